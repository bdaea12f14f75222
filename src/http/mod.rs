//! Hand-written HTTP/1.1: sans-IO request/response parsers and writers.
