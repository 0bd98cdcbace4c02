//! Exit codes: every status the five commands exit with, in one enum and
//! nowhere else (as fd's `exit_codes.rs`), a front's failure (`Fail`: the
//! status and its one-line message), and the result type fronts return.

/// Every exit status the five commands use, and nowhere else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Error = 1,
    Usage = 2,
    WaitTimeout = 124,
    NotExecutable = 126,
    NotFound = 127,
    Cancelled = 130,
}

impl Exit {
    /// Every status, for the tables of help, man pages and README (a test
    /// checks that they list exactly these).
    pub const ALL: [Exit; 7] =
        [Exit::Ok, Exit::Error, Exit::Usage, Exit::WaitTimeout, Exit::NotExecutable, Exit::NotFound, Exit::Cancelled];
}

/// A front's failure: the status to exit with and the one-line message
/// (empty for a quiet exit, such as a closed pipe or a cancelled picker).
#[derive(Debug)]
pub struct Fail {
    pub code: Exit,
    pub msg: String,
}

impl Fail {
    pub fn new(code: Exit, msg: impl Into<String>) -> Fail {
        Fail { code, msg: msg.into() }
    }
    pub fn quiet(code: Exit) -> Fail {
        Fail { code, msg: String::new() }
    }
}

impl From<String> for Fail {
    fn from(msg: String) -> Fail {
        Fail::new(Exit::Error, msg)
    }
}

pub type Res<T> = Result<T, Fail>;
