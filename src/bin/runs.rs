//! The C `main`: no std runtime set-up before it (see `bgrun::start`).
#![no_main]

#[no_mangle]
extern "C" fn main(_argc: std::ffi::c_int, _argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    bgrun::start(None)
}
