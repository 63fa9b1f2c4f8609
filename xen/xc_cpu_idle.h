/* Physical CPUs' idle time from libxenctrl (xc_getcpuinfo), behind a C boundary: xenctrl.h's
   headers use GNU C extensions that standard C++ refuses. */
#ifndef XAPID_XEN_XC_CPU_IDLE_H
#define XAPID_XEN_XC_CPU_IDLE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A libxenctrl handle, or NULL (errno says why). */
void* xapid_xc_open(void);
void xapid_xc_close(void* xc);
/* Each CPU's idle time since Xen booted (ns) into idle_ns[0..max_cpus); the number of CPUs
   read, or -1. */
int xapid_xc_cpu_idle(void* xc, uint64_t* idle_ns, int max_cpus);

#ifdef __cplusplus
}
#endif

#endif
