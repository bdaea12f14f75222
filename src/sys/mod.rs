//! Operating-system helpers: the only place with `unsafe`.
