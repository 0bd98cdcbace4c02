//! `job install DEST`: puts this machine's binaries on a host.
