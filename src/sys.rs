//! The one place where `unsafe` is allowed: memory maps today, foreign libraries later.
#![allow(unsafe_code)]

use std::fs::File;

/// Map a file read-only.
pub fn map_file(f: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: trtlens maps files it wrote once and renamed into place (run stores) or files the user
    // hands it to read; they are not modified while mapped. A concurrent truncation by another
    // program is a misuse memmap cannot guard against.
    unsafe { memmap2::Mmap::map(f) }
}
