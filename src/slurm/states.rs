//! What Slurm's JOB_STATE means for a job's state: squeue's row for one
//! job, the phase its state names, and the state bgrun gives a job in each
//! (PENDING is `queued`, RUNNING `running`; of the ends, CANCELLED is
//! `stopped`, or `skipped` for a dependency that can never be met, TIMEOUT
//! `timeout`, OUT_OF_MEMORY and PREEMPTED `killed`, anything else, which
//! the step should have recorded itself, `lost`).

use crate::store::State;

/// What squeue says of one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// JOB_STATE as squeue's `%T` prints it: PENDING, RUNNING, COMPLETED…
    pub state: String,
    /// `%r`: why it waits (Priority, Resources…), or how it ended.
    pub reason: String,
    /// `%N`: the node(s) it runs on, empty while pending.
    pub nodes: String,
}

/// Where a job stands, from squeue's JOB_STATE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Pending,
    Running,
    /// Ended: the step should have recorded how.
    Finished,
    Cancelled,
    TimeLimit,
    /// Killed by Slurm or the kernel: out of memory, preempted.
    Killed,
    /// Ended by a failure of the node or of Slurm itself.
    Failed,
}

impl Row {
    fn phase(&self) -> Phase {
        match self.state.as_str() {
            "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD" | "SPECIAL_EXIT" => {
                Phase::Pending
            }
            "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "STOPPED" | "SIGNALING" | "STAGE_OUT"
            | "RESIZING" => Phase::Running,
            "COMPLETED" | "FAILED" => Phase::Finished,
            "CANCELLED" => Phase::Cancelled,
            "TIMEOUT" | "DEADLINE" => Phase::TimeLimit,
            "OUT_OF_MEMORY" | "PREEMPTED" => Phase::Killed,
            _ => Phase::Failed,
        }
    }
}

impl Row {
    /// The state of a job Slurm says this of: `queued`, `running`, or the
    /// state its end is recorded in (`lost`: an end the step should have
    /// recorded, and did not).
    pub fn state(&self) -> State {
        match self.phase() {
            Phase::Pending => State::Queued,
            Phase::Running => State::Running,
            // `--after` a job that did not end done: never run.
            Phase::Cancelled if self.reason.starts_with("Dependency") => State::Skipped,
            Phase::Cancelled => State::Stopped,
            Phase::TimeLimit => State::Timeout,
            Phase::Killed => State::Killed,
            Phase::Finished | Phase::Failed => State::Lost,
        }
    }

    /// Slurm's reason, if it gave one: squeue prints `None` for none.
    pub fn reason(&self) -> Option<&str> {
        Some(self.reason.as_str()).filter(|r| !r.is_empty() && *r != "None")
    }

    /// Slurm's words for an end, as its record keeps them: `Slurm: STATE`
    /// or `Slurm: STATE (REASON)`.
    pub fn words(&self) -> String {
        match self.reason() {
            Some(r) => format!("Slurm: {} ({r})", self.state),
            None => format!("Slurm: {}", self.state),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_end_slurm_names_maps_to_a_phase() {
        let phase = |s: &str| Row { state: s.into(), reason: String::new(), nodes: String::new() }.phase();
        assert_eq!(phase("PENDING"), Phase::Pending);
        assert_eq!(phase("COMPLETING"), Phase::Running);
        assert_eq!(phase("CANCELLED"), Phase::Cancelled);
        assert_eq!(phase("TIMEOUT"), Phase::TimeLimit);
        assert_eq!(phase("OUT_OF_MEMORY"), Phase::Killed);
        assert_eq!(phase("NODE_FAIL"), Phase::Failed);
        assert_eq!(phase("SOMETHING_NEW"), Phase::Failed);
    }

    #[test]
    fn a_cancelled_dependency_is_skipped_and_an_end_the_step_missed_is_lost() {
        let row = |s: &str, r: &str| Row { state: s.into(), reason: r.into(), nodes: String::new() };
        assert_eq!(row("PENDING", "Priority").state(), State::Queued);
        assert_eq!(row("CANCELLED", "DependencyNeverSatisfied").state(), State::Skipped);
        assert_eq!(row("CANCELLED", "None").state(), State::Stopped);
        assert_eq!(row("NODE_FAIL", "").state(), State::Lost);
        assert_eq!(row("CANCELLED", "None").words(), "Slurm: CANCELLED");
        assert_eq!(row("TIMEOUT", "TimeLimit").words(), "Slurm: TIMEOUT (TimeLimit)");
    }

    #[test]
    fn a_pending_job_whose_reason_is_none_has_no_reason() {
        let row = |r: &str| Row { state: "PENDING".into(), reason: r.into(), nodes: String::new() };
        assert_eq!(row("None").reason(), None);
        assert_eq!(row("").reason(), None);
        assert_eq!(row("Priority").reason(), Some("Priority"));
    }
}
