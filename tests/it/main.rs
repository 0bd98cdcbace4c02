//! The integration tests: one binary (one link instead of one per file),
//! a module per behaviour. Each runs the real binaries as a user would,
//! with a temporary store (`common::Env`), and waits for conditions with
//! a deadline, never a fixed sleep. A test that needs what this machine
//! lacks (a tool, namespaces, Slurm) says so and is counted by
//! tests/zz_not_run.rs, which cargo runs after this binary.
//!
//! - `launch`: starting a job (run, job run): what reaches it, what it
//!   inherits, the id, name and key that name it.
//! - `state`: how a job is judged (running, done, failed, lost,
//!   elsewhere…), how it is listed, what it used.
//! - `stop`: job stop and --timeout: what is killed, and only that.
//! - `wait`: job wait and --wait.
//! - `logs`: runlog and job logs, following, the header, the cap, the
//!   picker.
//! - `removal`: runrm and job clean.
//! - `scale`: stores of many jobs: removal in bulk, the ids of removed
//!   jobs kept compactly, listings that read only what they show.
//! - `queue`: queues, slots and --after.
//! - `remote`: the same commands on other hosts over ssh (`--on`,
//!   `DEST:ID`), against real sshd hosts in namespaces.
//! - `notify`: ntfy notifications and their secrets.
//! - `slurm`: the Slurm backend.
//! - `store`: where the store is, its modes, full disks, damaged and
//!   planted entries.
//! - `cli`: arguments, usage errors, help, exit codes.
//! - `install`: install.sh.
//! - `assets`: the completions and man pages, generated from the clap
//!   definitions (`BGRUN_BLESS=1` rewrites them).

#[path = "../common/mod.rs"]
mod common;

mod assets;
mod cli;
mod install;
mod launch;
mod logs;
mod notify;
mod queue;
mod remote;
mod removal;
mod scale;
mod slurm;
mod state;
mod stop;
mod store;
mod wait;
