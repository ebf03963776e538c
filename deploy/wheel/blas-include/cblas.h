/* deploy/build-wheel: the wheel's OpenBLAS (scipy-openblas32) prefixes every symbol with
 * scipy_; this maps the plain names the core calls onto them, then includes the real
 * cblas.h (next on the include path, /opt/scipy-openblas32/include). */
#ifndef ORCHARD_WHEEL_CBLAS_H
#define ORCHARD_WHEEL_CBLAS_H
#include "orchard_scipy_openblas_names.h"
#include_next <cblas.h>
#endif
