//! The watcher once the job's end is recorded, while processes of the job
//! are left (a background child, a daemon it started): it stays until none
//! is left (another job's watcher and its tree aside), so that they stay
//! the job's: under `--log-max` the cap holds while they write, a removal
//! keeps the job (its log is still written), and a stop of a job that
//! started this one never reaches them (they stay below this watcher, not
//! the other's). The recorded end stays the job's own process's. While it
//! stays, the leftovers are ended as a running job's tree is: on a stop
//! request (`job stop` on the ended job: SIGTERM, the grace, SIGKILL; at
//! once with `--force`), or on a SIGTERM to the watcher itself (a shutdown,
//! a user's `kill`), which is noted in the log.
//!
//! Which processes hold the log open for writing is not known (no count of
//! writers is kept by the kernel); the job's processes are the ones that
//! got it, and a subreaper sees them all. It lists them again only when one
//! of its children ends (a subreaper has a descendant exactly while it has
//! a child, but for other jobs' watchers), and every `LINGER_LOOK`.

use super::pump::Pump;
use super::{another_watcher, GRACE};
use crate::proc::{self, Wake};
use crate::store;
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often a watcher that stays for its job's leftovers lists them when
/// none of its children ended (a walk of /proc).
const LINGER_LOOK: Duration = Duration::from_secs(30);

/// How often it lists them while ending them.
const ENDING_LOOK: Duration = Duration::from_millis(20);

/// Stays while any process of the job is left (see the module's header).
pub(super) fn stay(dir: &Path, log: &File, pump: Option<&Pump>, deadline: Option<Instant>) {
    let me = proc::my_pid();
    let mut look = Instant::now();
    // While ending the leftovers: when SIGKILL is due, and when it went
    // out (then the watcher leaves after a while whatever is left: a
    // process in uninterruptible sleep is beyond any signal).
    let mut ending: Option<(Instant, Option<Instant>)> = None;
    let (mut terminated, mut timed_out) = (false, false);
    loop {
        // The job's `--timeout` bounds what it left running too.
        if ending.is_none() && deadline.is_some_and(|d| Instant::now() >= d) {
            timed_out = true;
            ending = end_leftovers(me, ending, false);
            look = Instant::now();
        }
        let listed = Instant::now() >= look;
        let gone = listed && proc::descendants(me, &another_watcher).is_empty();
        if listed {
            look = Instant::now() + if ending.is_some() { ENDING_LOOK } else { LINGER_LOOK };
        }
        if gone || ending.is_some_and(|(_, k)| k.is_some_and(|k| k.elapsed() > Duration::from_secs(5))) {
            // What the last of them wrote (the pump copies the rest).
            let _held = pump.map(Pump::drained);
            if terminated {
                let msg = "the watcher was sent SIGTERM (a shutdown, a kill): ended the job's remaining processes";
                let _ = store::append_note(log, &store::log_path(dir), msg);
            } else if timed_out {
                let _ =
                    store::append_note(log, &store::log_path(dir), "--timeout: ended the job's remaining processes");
            }
            return;
        }
        if let Some((kill_at, None)) = ending.filter(|(at, _)| Instant::now() >= *at) {
            proc::signal_tree(me, None, proc::SIGKILL, &another_watcher);
            ending = Some((kill_at, Some(Instant::now())));
        }
        let mut until = look;
        if let Some((kill_at, None)) = ending {
            until = until.min(kill_at);
        }
        if let Some(d) = deadline.filter(|_| ending.is_none()) {
            until = until.min(d);
        }
        let kill = || store::stop_request(dir).as_deref() == Some("kill");
        match proc::next_wake(Some(until)) {
            Wake::Terminated => {
                // Said once they are ended, after all they wrote: then
                // no drop of the cap can take the note away.
                terminated |= store::stop_request(dir).is_none();
                ending = end_leftovers(me, ending, kill());
                look = Instant::now();
            }
            Wake::StopRequest if store::stop_request(dir).is_some() => {
                ending = end_leftovers(me, ending, kill());
                look = Instant::now();
            }
            // A child ended, or none is left: list again now.
            Wake::NoChildren | Wake::Reaped(..) => look = Instant::now(),
            Wake::StopRequest | Wake::Deadline => {}
        }
    }
}

/// Signals what is left of the job: SIGTERM with the grace to run, or
/// SIGKILL at once (`kill`, or a kill asked while the grace runs).
/// Returns when SIGKILL is due and when it went out.
fn end_leftovers(
    me: i32,
    ending: Option<(Instant, Option<Instant>)>,
    kill: bool,
) -> Option<(Instant, Option<Instant>)> {
    match ending {
        None if kill => {
            proc::signal_tree(me, None, proc::SIGKILL, &another_watcher);
            Some((Instant::now(), Some(Instant::now())))
        }
        None => {
            proc::signal_tree(me, None, proc::SIGTERM, &another_watcher);
            Some((Instant::now() + GRACE, None))
        }
        Some((at, None)) if kill => {
            proc::signal_tree(me, None, proc::SIGKILL, &another_watcher);
            Some((at, Some(Instant::now())))
        }
        e => e,
    }
}
