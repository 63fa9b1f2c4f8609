// Sanitizer defaults baked into each fuzzer, so that running one by hand behaves like
// tests/fuzz/run: any undefined behaviour aborts (and leaves a crash input), except the one
// known RapidJSON report listed in ubsan.supp.
extern "C" const char* __ubsan_default_options() {
  return "halt_on_error=1:print_stacktrace=1:suppressions=" XAPID_UBSAN_SUPPRESSIONS;
}
