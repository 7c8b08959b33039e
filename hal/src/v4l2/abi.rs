//! The layouts of v4l2r's bindgen-generated structs, checked against what
//! the target's C compiler says. v4l2r sizes its ioctl numbers from these
//! structs (`_IOWR('V', 15, struct v4l2_buffer)` is `VIDIOC_QBUF`), so
//! bindings generated for the wrong target (the host's headers, or v4l2r's
//! `arch32` feature, which means i686) give ioctls the kernel rejects.
//!
//! The expected figures come from a C program printing `sizeof` of each
//! struct, built with gcc, aarch64-linux-gnu-gcc and arm-linux-gnueabihf-gcc
//! (docs/boards.md). `v4l2_event` tells ARM from i686 (a 64-bit member:
//! 8-aligned on ARM, 4-aligned on i686); `v4l2_buffer` 32-bit from 64-bit
//! (`struct timeval` and a pointer inside).

#[cfg(all(
    test,
    any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm")
))]
mod tests {
    use std::mem::size_of;

    use v4l2r::bindings::{
        v4l2_buffer, v4l2_event, v4l2_ext_controls, v4l2_format, v4l2_plane, v4l2_requestbuffers,
    };

    /// x86_64 and aarch64 (gcc, aarch64-linux-gnu-gcc).
    #[cfg(target_pointer_width = "64")]
    const C: [(&str, usize); 6] = [
        ("v4l2_buffer", 88),
        ("v4l2_format", 208),
        ("v4l2_event", 136),
        ("v4l2_plane", 64),
        ("v4l2_requestbuffers", 20),
        ("v4l2_ext_controls", 32),
    ];
    /// armv7 gnueabihf (arm-linux-gnueabihf-gcc; 32-bit time_t).
    #[cfg(target_arch = "arm")]
    const C: [(&str, usize); 6] = [
        ("v4l2_buffer", 68),
        ("v4l2_format", 204),
        ("v4l2_event", 128),
        ("v4l2_plane", 60),
        ("v4l2_requestbuffers", 20),
        ("v4l2_ext_controls", 24),
    ];

    #[test]
    fn struct_sizes_match_the_targets_c_compiler() {
        let rust = [
            ("v4l2_buffer", size_of::<v4l2_buffer>()),
            ("v4l2_format", size_of::<v4l2_format>()),
            ("v4l2_event", size_of::<v4l2_event>()),
            ("v4l2_plane", size_of::<v4l2_plane>()),
            ("v4l2_requestbuffers", size_of::<v4l2_requestbuffers>()),
            ("v4l2_ext_controls", size_of::<v4l2_ext_controls>()),
        ];
        assert_eq!(rust, C);
    }
}
