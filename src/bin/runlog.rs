//! The one binary that links skim: it hands the picker to the router.
//! The C `main`: no std runtime set-up before it (see `bgrun::start`).
#![no_main]

#[path = "../pick.rs"]
mod pick;

#[no_mangle]
extern "C" fn main(_argc: std::ffi::c_int, _argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    bgrun::start(Some(pick::pick))
}
