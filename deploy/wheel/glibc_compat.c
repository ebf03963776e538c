/* Two glibc symbols that Debian 12's libstdc++.a (GCC 12) refers to and glibc 2.31 lacks,
 * defined here so that modules linked with -static-libstdc++ against the bullseye sysroot
 * (deploy/sysroot-toolchain.cmake) need nothing newer than glibc 2.31. Compiled to one
 * object and linked into every module and program; hidden, so each copy stays private to
 * the module it is linked into and never interposes a newer glibc's own definitions.
 *
 * __libc_single_threaded (glibc 2.32): libstdc++ skips atomic reference counting while it is
 * non-zero. 0 means "maybe multi-threaded": always atomic, which is always correct.
 * arc4random (glibc 2.36): one source of std::random_device. getrandom(2) (glibc 2.25),
 * retried on EINTR and short reads; it blocks only until the kernel's pool is initialised.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>

#define ORCHARD_HIDDEN __attribute__((visibility("hidden")))

ORCHARD_HIDDEN char __libc_single_threaded = 0;

ORCHARD_HIDDEN uint32_t arc4random(void) {
  uint32_t value = 0;
  unsigned char* out = (unsigned char*)&value;
  size_t got = 0;
  while (got < sizeof value) {
    const ssize_t n = getrandom(out + got, sizeof value - got, 0);
    if (n > 0) {
      got += (size_t)n;
    } else if (n < 0 && errno != EINTR) {
      abort(); /* as glibc's arc4random: no silent weak randomness */
    }
  }
  return value;
}
