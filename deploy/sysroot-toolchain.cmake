# CMake toolchain: the host's g++-12 (Debian 12) building against a Debian 11 "bullseye" tree
# (glibc 2.31), so that what it builds runs on glibc 2.31 and newer: the manylinux_2_31 wheel
# of deploy/build-wheel, which makes the sysroot (debootstrap) and passes its path as
# -DORCHARD_SYSROOT=... or $ORCHARD_SYSROOT. See docs/wheel.md.
#
# What it takes, and why:
# - --sysroot: headers and libraries from the tree. The C++ standard library headers stay
#   g++-12's own (C++20: std::bit_cast, floating-point std::to_chars), and libstdc++ is
#   linked statically (-static-libstdc++): bullseye's libstdc++.so.6 is GCC 10's, older than
#   the symbols g++-12's code needs, and manylinux_2_31 allows only GCC 10's.
# - -L and -B for the tree's library folders: Debian's gcc searches its own multiarch folder
#   (/usr/lib/x86_64-linux-gnu of the HOST) before the sysroot's, for libraries and for
#   crt1.o/crti.o alike; without these, glibc 2.36 is linked silently (auditwheel then
#   reports GLIBC_2.34 symbols).
# - glibc_compat.o: Debian 12's libstdc++.a refers to two glibc symbols newer than 2.31
#   (__libc_single_threaded, arc4random); deploy/wheel/glibc_compat.c defines them, hidden,
#   in every module and program linked here.
# Find mode ONLY: every library, header and CMake package comes from the tree (OpenCV,
# scipy-openblas and the Python headers are installed under it, in /opt); programs (protoc,
# pkg-config) from the host.

if(NOT ORCHARD_SYSROOT)
  set(ORCHARD_SYSROOT "$ENV{ORCHARD_SYSROOT}")
endif()
if(NOT ORCHARD_SYSROOT OR NOT EXISTS "${ORCHARD_SYSROOT}/usr/include/stdio.h")
  message(FATAL_ERROR "sysroot-toolchain.cmake: set ORCHARD_SYSROOT to the bullseye tree "
    "made by deploy/build-wheel (got '${ORCHARD_SYSROOT}')")
endif()
# try_compile projects read this file again: hand them the same tree.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES ORCHARD_SYSROOT)
set(ENV{ORCHARD_SYSROOT} "${ORCHARD_SYSROOT}")

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(CMAKE_C_COMPILER gcc-12)
set(CMAKE_CXX_COMPILER g++-12)
set(CMAKE_SYSROOT "${ORCHARD_SYSROOT}")

set(_orchard_libdirs "${ORCHARD_SYSROOT}/usr/lib/x86_64-linux-gnu"
  "${ORCHARD_SYSROOT}/lib/x86_64-linux-gnu")
set(_orchard_link "")
foreach(dir IN LISTS _orchard_libdirs)
  string(APPEND _orchard_link " -B${dir}/ -L${dir}")
endforeach()
string(APPEND _orchard_link " -static-libstdc++")
set(_orchard_compat "${ORCHARD_SYSROOT}/opt/orchard-compat/glibc_compat.o")
if(EXISTS "${_orchard_compat}")
  string(APPEND _orchard_link " ${_orchard_compat}")
endif()
set(CMAKE_EXE_LINKER_FLAGS_INIT "${_orchard_link}")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "${_orchard_link}")
set(CMAKE_MODULE_LINKER_FLAGS_INIT "${_orchard_link}")

set(CMAKE_FIND_ROOT_PATH "${ORCHARD_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config (the host's program) reads only the tree's .pc files, and prefixes their paths.
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${ORCHARD_SYSROOT}")
set(ENV{PKG_CONFIG_LIBDIR}
  "${ORCHARD_SYSROOT}/opt/orchard-pkgconfig:${ORCHARD_SYSROOT}/usr/lib/x86_64-linux-gnu/pkgconfig:${ORCHARD_SYSROOT}/usr/lib/pkgconfig:${ORCHARD_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
