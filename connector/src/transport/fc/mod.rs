//! Fibre Channel (x86_64, ppc64le, s390x zFCP): see `docs/fc.md`.
