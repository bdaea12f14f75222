//! Payloads: the YAML documents carried by SSNTP frames.
