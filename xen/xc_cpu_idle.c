#include "xen/xc_cpu_idle.h"

#include <stdlib.h>
#include <xenctrl.h>

void* xapid_xc_open(void) { return xc_interface_open(NULL, NULL, 0); }

void xapid_xc_close(void* xc) {
  if (xc) xc_interface_close((xc_interface*)xc);
}

int xapid_xc_cpu_idle(void* xc, uint64_t* idle_ns, int max_cpus) {
  if (!xc || max_cpus <= 0) return -1;
  xc_cpuinfo_t* info = calloc((size_t)max_cpus, sizeof *info);
  if (!info) return -1;
  int found = 0;
  int rc = xc_getcpuinfo((xc_interface*)xc, max_cpus, info, &found);
  if (rc == 0)
    for (int i = 0; i < found && i < max_cpus; ++i) idle_ns[i] = info[i].idletime;
  free(info);
  return rc == 0 ? found : -1;
}
