//! The child process of the exec source: a program whose stdout carries the
//! media stream. It runs in a process group of its own, so that stopping it
//! also stops whatever it started (a shell pipeline, an ffmpeg under a
//! script); its stderr is logged line by line and its tail kept as the
//! text to show when the stream fails.

use std::collections::VecDeque;
use std::io;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::task::JoinHandle;
use tracing::info;

/// How many stderr lines the last-error text keeps.
pub const STDERR_TAIL_LINES: usize = 20;
/// Longer stderr lines are cut to this many bytes.
pub const STDERR_LINE_MAX: usize = 512;
/// How long [`ExecProcess::stop`] waits after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("exec source has an empty command")]
    EmptyCommand,
    #[error("cannot start {command:?}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
}

/// True when `program` names an executable file: a path as it is, a bare
/// name in the `PATH` the child will get.
fn runnable(program: &str, env: &[(String, String)]) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return executable(std::path::Path::new(program));
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    std::env::split_paths(&path).any(|dir| executable(&dir.join(program)))
}

/// A running child process; see the module doc. Dropping it kills the
/// whole process group with SIGKILL; [`ExecProcess::stop`] is the gentle way.
#[derive(Debug)]
pub struct ExecProcess {
    child: Child,
    /// The child's pid, which is also its process group id.
    pid: i32,
    /// Whether the child has been waited for: then its pid may be reused,
    /// and the group must not be signalled by pid any more unless it still
    /// has members (a group id is not reused while it has members).
    reaped: bool,
    stdout: ChildStdout,
    tail: Arc<Mutex<VecDeque<String>>>,
    stderr_task: Option<JoinHandle<()>>,
}

impl ExecProcess {
    /// Starts `command[0]` with the rest as arguments and `env` added to the
    /// agent's environment; stdin is /dev/null. `stream` names the stream in
    /// the logs of its stderr.
    pub fn spawn(
        stream: &str,
        command: &[String],
        env: &[(String, String)],
    ) -> Result<ExecProcess, ExecError> {
        let (program, args) = command.split_first().ok_or(ExecError::EmptyCommand)?;
        // Checked before spawning: the error then names the program the
        // same way everywhere (under an emulator, a failed exec can look
        // like a child that exits at once).
        if !runnable(program, env) {
            return Err(ExecError::Spawn {
                command: program.clone(),
                source: io::Error::new(io::ErrorKind::NotFound, "no such executable program"),
            });
        }
        let mut child = Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ExecError::Spawn {
                command: program.clone(),
                source,
            })?;
        let (Some(pid), Some(stdout), Some(stderr)) =
            (child.id(), child.stdout.take(), child.stderr.take())
        else {
            // Cannot happen for a freshly spawned child with piped stdio.
            return Err(ExecError::Spawn {
                command: program.clone(),
                source: io::Error::other("no pid or pipes for the child"),
            });
        };
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_task = tokio::spawn(log_stderr(
            stderr,
            stream.to_string(),
            program.clone(),
            tail.clone(),
        ));
        Ok(ExecProcess {
            child,
            pid: pid as i32,
            reaped: false,
            stdout,
            tail,
            stderr_task: Some(stderr_task),
        })
    }

    /// The child's pid (and process group id).
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Reads the next bytes of the child's stdout into `buf`; 0 at its end.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stdout.read(buf).await
    }

    /// The child's stdout, for a reader that wants it directly.
    pub fn stdout(&mut self) -> &mut ChildStdout {
        &mut self.stdout
    }

    /// The last lines the child wrote to stderr, oldest first, joined by
    /// newlines: what to report when the stream fails.
    pub fn last_error(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits for the child to exit on its own, and kills what it left in its
    /// process group.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait().await?;
        self.reaped = true;
        self.kill_leftovers();
        self.drain_stderr().await;
        Ok(status)
    }

    /// Stops the child: SIGTERM to its process group, then SIGKILL to the
    /// group if the child has not exited after [`STOP_GRACE`]. The child is
    /// always reaped; members of its group still alive are killed.
    pub async fn stop(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            self.reaped = true;
            self.kill_leftovers();
            self.drain_stderr().await;
            return Ok(status);
        }
        self.signal_group(libc::SIGTERM);
        let status = match tokio::time::timeout(STOP_GRACE, self.child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                self.signal_group(libc::SIGKILL);
                self.child.wait().await?
            }
        };
        self.reaped = true;
        self.kill_leftovers();
        self.drain_stderr().await;
        Ok(status)
    }

    /// Sends `signal` to the process group, while the child is not reaped
    /// (so its pid, the group id, cannot have been reused).
    fn signal_group(&self, signal: libc::c_int) {
        if !self.reaped {
            // SAFETY: kill(2) has no memory effects; a negative pid names
            // the process group. The child itself is signalled too: right
            // after the spawn it may not have made its group yet.
            unsafe {
                libc::kill(-self.pid, signal);
                libc::kill(self.pid, signal);
            }
        }
    }

    /// SIGKILLs what is left of the group after the child was reaped. The
    /// group id stays taken while the group has members, so this reaches
    /// only them (or no one: ESRCH).
    fn kill_leftovers(&self) {
        // SAFETY: as in signal_group.
        unsafe { libc::kill(-self.pid, libc::SIGKILL) };
    }

    /// Lets the stderr reader take the last lines (its pipe closes once the
    /// group is gone), but not for long.
    async fn drain_stderr(&mut self) {
        if let Some(task) = self.stderr_task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_millis(500), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for ExecProcess {
    fn drop(&mut self) {
        // The last resort: kill the whole group, not only the child
        // (kill_on_drop), unless it was stopped or waited for.
        self.signal_group(libc::SIGKILL);
        if let Some(task) = &self.stderr_task {
            task.abort();
        }
    }
}

/// Logs each stderr line of the child and keeps the last ones in `tail`.
async fn log_stderr(
    stderr: ChildStderr,
    stream: String,
    program: String,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        let (done, consumed) = match reader.fill_buf().await {
            Ok([]) | Err(_) => (true, 0),
            Ok(buf) => {
                let newline = buf.iter().position(|&b| b == b'\n');
                let part = &buf[..newline.unwrap_or(buf.len())];
                let room = STDERR_LINE_MAX.saturating_sub(line.len());
                line.extend_from_slice(&part[..part.len().min(room)]);
                match newline {
                    Some(at) => {
                        emit_line(&stream, &program, &line, &tail);
                        line.clear();
                        (false, at + 1)
                    }
                    None => (false, buf.len()),
                }
            }
        };
        reader.consume(consumed);
        if done {
            if !line.is_empty() {
                emit_line(&stream, &program, &line, &tail);
            }
            return;
        }
    }
}

fn emit_line(stream: &str, program: &str, line: &[u8], tail: &Mutex<VecDeque<String>>) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    info!(stream, "{program}: {text}");
    let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
    if tail.len() == STDERR_TAIL_LINES {
        tail.pop_front();
    }
    tail.push_back(text.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    async fn read_all(p: &mut ExecProcess) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = p.read(&mut buf).await.unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    /// Whether a process is gone: no /proc entry, or a zombie waiting for
    /// its reaper (init, for an orphan).
    fn gone(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    #[tokio::test]
    async fn stdout_arrives_and_exit_status_is_reported() {
        let env = [("GREETING".to_string(), "hello".to_string())];
        let mut p =
            ExecProcess::spawn("s", &sh("printf \"$GREETING\\0\\1\"; exit 3"), &env).unwrap();
        assert_eq!(read_all(&mut p).await, b"hello\0\x01");
        let status = p.wait().await.unwrap();
        assert_eq!(status.code(), Some(3));
    }

    #[tokio::test]
    async fn stderr_tail_is_kept_and_bounded() {
        let script = "i=0; while [ $i -lt 30 ]; do echo line$i >&2; i=$((i+1)); done; \
                      head -c 2000 /dev/zero | tr '\\0' x >&2";
        let mut p = ExecProcess::spawn("s", &sh(script), &[]).unwrap();
        read_all(&mut p).await;
        p.wait().await.unwrap();
        let text = p.last_error();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), STDERR_TAIL_LINES);
        assert_eq!(lines[0], "line11");
        assert_eq!(lines[18], "line29");
        assert_eq!(lines[19], "x".repeat(STDERR_LINE_MAX));
    }

    #[tokio::test]
    async fn a_missing_command_is_named_in_the_error() {
        let err = ExecProcess::spawn("s", &["no-such-program-xyz".into()], &[]).unwrap_err();
        assert!(err.to_string().contains("no-such-program-xyz"), "{err}");
        assert!(matches!(
            ExecProcess::spawn("s", &[], &[]),
            Err(ExecError::EmptyCommand)
        ));
    }

    #[tokio::test]
    async fn stop_terminates_gently() {
        let mut p = ExecProcess::spawn("s", &sh("echo started; exec sleep 100"), &[]).unwrap();
        let pid = p.pid();
        // Running (and in its group) once it has spoken.
        let mut first = [0u8; 8];
        assert!(p.read(&mut first).await.unwrap() > 0);
        let started = Instant::now();
        let status = p.stop().await.unwrap();
        assert!(started.elapsed() < STOP_GRACE);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        assert!(gone(pid));
    }

    #[tokio::test]
    async fn a_child_that_ignores_sigterm_is_killed() {
        let mut p =
            ExecProcess::spawn("s", &sh("trap '' TERM; echo ready; sleep 100"), &[]).unwrap();
        let mut buf = [0u8; 16];
        assert!(p.read(&mut buf).await.unwrap() > 0); // the trap is set
        let started = Instant::now();
        let status = p.stop().await.unwrap();
        let took = started.elapsed();
        assert!(took >= STOP_GRACE && took < STOP_GRACE * 2, "{took:?}");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    #[tokio::test]
    async fn grandchildren_die_with_the_group() {
        let mut p = ExecProcess::spawn("s", &sh("sleep 100 & echo $!; wait"), &[]).unwrap();
        let mut buf = [0u8; 32];
        let n = p.read(&mut buf).await.unwrap();
        let grandchild: u32 = std::str::from_utf8(&buf[..n])
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(!gone(grandchild));
        let child = p.pid();
        p.stop().await.unwrap();
        assert!(gone(child));
        let deadline = Instant::now() + Duration::from_secs(2);
        while !gone(grandchild) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone(grandchild), "grandchild {grandchild} still alive");
    }

    #[tokio::test]
    async fn dropping_kills_the_group() {
        let mut p = ExecProcess::spawn("s", &sh("sleep 100 & echo $!; wait"), &[]).unwrap();
        let mut buf = [0u8; 32];
        let n = p.read(&mut buf).await.unwrap();
        let grandchild: u32 = std::str::from_utf8(&buf[..n])
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        drop(p);
        let deadline = Instant::now() + Duration::from_secs(2);
        while !gone(grandchild) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone(grandchild));
    }
}
