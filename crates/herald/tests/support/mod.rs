//! What both test binaries (`it` and `faults`) need of the machine: free ports, and a
//! size-limited filesystem that a test can fill. Included by each with `#[path]`; not every
//! binary uses every item.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether this process runs as root (mounting needs it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
}

/// A tmpfs of a fixed size mounted on a fresh directory, unmounted when dropped: a disk that
/// a test can fill for real.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts one, or says why it cannot.
    pub fn mount(megabytes: u32) -> Result<Self, String> {
        if !is_root() {
            return Err("not running as root".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount refused: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the filesystem to the last byte with one file, then gives `keep` bytes back;
    /// removing the file gives the rest back.
    pub fn fill(&self, keep: u64) -> PathBuf {
        let path = self.path().join("filler");
        // Most of it at once (tmpfs allocates without writing), the rest written below.
        let avail = std::process::Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(self.path())
            .output()
            .ok()
            .and_then(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .nth(1)
                    .and_then(|l| l.trim().parse::<u64>().ok())
            })
            .unwrap_or(0);
        if avail > 1 << 20 {
            let _ = std::process::Command::new("fallocate")
                .args(["-l", &(avail - (1 << 20)).to_string()])
                .arg(&path)
                .status();
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("filler");
        let block = vec![0xA5_u8; 1 << 20];
        while file.write_all(&block).is_ok() {}
        // Whatever is left, to the last byte.
        while file.write_all(&[0xA5]).is_ok() {}
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        file.set_len(len.saturating_sub(keep))
            .expect("giving space back");
        let _ = file.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
