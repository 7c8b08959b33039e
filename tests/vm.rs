//! A Linux guest under qemu for the tests that need a kernel of their own:
//! real drivers (vivid, snd-aloop, v4l2loopback), a disk whose power can be
//! cut. Debian's kernel and busybox come from `tests/vm/fetch-kernel.sh`
//! (cached); the guest is a busybox initramfs built here from a
//! [`VmConfig`]. The host talks to the guest over a virtio console that is
//! not the kernel's: [`Vm::exec`] runs a shell command and returns its exit
//! code and output. See tests/vm/README.md.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;

/// How long a boot may take before it counts as failed (TCG on a busy
/// 2-core machine boots in a few seconds; this is for the worst day).
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

/// How the host backs a guest disk (qemu's `cache=`).
#[derive(Clone, Copy, Debug)]
pub enum DiskCache {
    /// O_DIRECT on the image; the guest sees a volatile write cache and
    /// sends flushes (`fdatasync` on the image).
    None,
    /// Every write reaches the image before the guest sees it complete; the
    /// guest sees no write cache.
    Writethrough,
}

/// What a guest holds and how it is wired.
#[derive(Clone, Debug)]
pub struct VmConfig {
    /// In-tree modules with their options, loaded in order (dependencies
    /// first).
    modules: Vec<(String, String)>,
    /// Out-of-tree `.ko` files with their options, loaded after them.
    out_of_tree: Vec<(PathBuf, String)>,
    /// Host path, guest path.
    files: Vec<(PathBuf, String)>,
    disk: Option<(PathBuf, DiskCache)>,
    forwards: Vec<u16>,
    memory_mib: u32,
    cpus: u32,
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            modules: Vec::new(),
            out_of_tree: Vec::new(),
            files: Vec::new(),
            disk: None,
            forwards: Vec::new(),
            memory_mib: 1024,
            cpus: 2,
        }
    }
}

impl VmConfig {
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads the guest kernel's module `name` (such as `vivid` or
    /// `snd-aloop`) with `options` (`"n_devs=2"`, or `""`), after the
    /// modules it depends on.
    pub fn module(mut self, name: &str, options: &str) -> Self {
        self.modules.push((name.into(), options.into()));
        self
    }

    /// Loads a module built for the guest kernel (such as the one
    /// `tests/vm/build-v4l2loopback.sh` builds) after the in-tree ones.
    pub fn out_of_tree_module(mut self, ko: impl Into<PathBuf>, options: &str) -> Self {
        self.out_of_tree.push((ko.into(), options.into()));
        self
    }

    /// Copies a host file or directory to `guest` (an absolute path). A
    /// program goes in without its debug info; a dynamically linked
    /// x86_64 one comes with the libraries `ldd` lists and the loader (and
    /// alsa-lib's configuration if it uses it).
    pub fn file(mut self, host: impl Into<PathBuf>, guest: &str) -> Self {
        self.files.push((host.into(), guest.into()));
        self
    }

    /// Attaches a raw image as the guest's `/dev/vda` (virtio-blk).
    pub fn disk(mut self, image: impl Into<PathBuf>, cache: DiskCache) -> Self {
        self.disk = Some((image.into(), cache));
        self
    }

    /// Forwards a free host port on 127.0.0.1 to the guest's TCP
    /// `guest_port` ([`Vm::host_port`] says which).
    pub fn forward(mut self, guest_port: u16) -> Self {
        self.forwards.push(guest_port);
        self
    }

    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    pub fn cpus(mut self, cpus: u32) -> Self {
        self.cpus = cpus;
        self
    }
}

/// The cache of the guest's kernel and busybox.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("STREAMSWITCH_VM_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".cache/streamswitch-vm"),
    }
}

/// A host program by name, also where a user's PATH may not look
/// (`modprobe`, `mkfs.ext4` and `debugfs` live in /usr/sbin).
pub fn host_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| name.into())
}

/// A script of tests/vm/.
fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vm").join(name)
}

/// The cached kernel (fetched on first use): its root (`boot/`,
/// `lib/modules/<version>/`), its version and its image.
fn kernel() -> Result<(PathBuf, String, PathBuf)> {
    let root = cache_dir().join("kernel");
    let cached = || -> Option<(String, PathBuf)> {
        let version = only_entry(&root.join("lib/modules")).ok()?;
        let image = root.join("boot").join(format!("vmlinux-{version}"));
        let busybox = cache_dir().join("busybox/bin/busybox");
        (image.exists() && busybox.exists()).then_some((version, image))
    };
    if cached().is_none() {
        let out = Command::new("bash")
            .arg(script("fetch-kernel.sh"))
            .output()
            .context("cannot run tests/vm/fetch-kernel.sh")?;
        if !out.status.success() {
            bail!(
                "tests/vm/fetch-kernel.sh could not fetch the guest's kernel and busybox (the VM tests need them; apt-get must reach Debian):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let (version, image) = cached().with_context(|| {
        format!(
            "tests/vm/fetch-kernel.sh left no kernel in {}",
            root.display()
        )
    })?;
    Ok((root, version, image))
}

/// The name of the one entry of `dir`.
fn only_entry(dir: &Path) -> Result<String> {
    let names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| Some(e.ok()?.file_name().to_str()?.to_owned()))
        .collect();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!("{} should hold one kernel, holds {names:?}", dir.display()),
    }
}

/// A guest ready to boot, as often as wanted: the initramfs is built once.
pub struct VmImage {
    dir: tempfile::TempDir,
    kernel: PathBuf,
    config: VmConfig,
}

impl VmImage {
    pub fn build(config: &VmConfig) -> Result<VmImage> {
        let (kroot, version, kernel) = kernel()?;
        let dir = tempfile::Builder::new()
            .prefix("streamswitch-vm.")
            .tempdir()
            .context("cannot make the VM's work dir")?;
        let root = dir.path().join("root");
        for d in ["bin", "dev", "proc", "sys", "tmp", "etc", "vm/modules"] {
            mkdir(&root.join(d))?;
        }
        copy(
            &cache_dir().join("busybox/bin/busybox"),
            &root.join("bin/busybox"),
        )?;
        for (file, text) in [
            ("init", INIT),
            ("etc/passwd", "root:x:0:0:root:/:/bin/sh\n"),
            // alsa-lib's `default` PCM resolves the group `audio`.
            ("etc/group", "root:x:0:\naudio:x:29:\nvideo:x:44:\n"),
            ("etc/hosts", "127.0.0.1 localhost\n"),
        ] {
            std::fs::write(root.join(file), text)
                .with_context(|| format!("cannot write /{file}"))?;
        }
        chmod_x(&root.join("init"))?;

        let mut modules = ModuleList::default();
        // The command channel, and the devices the config asks for.
        modules.add(&kroot, &version, "virtio_pci", "")?;
        modules.add(&kroot, &version, "virtio_console", "")?;
        if !config.forwards.is_empty() {
            modules.add(&kroot, &version, "virtio_net", "")?;
        }
        if config.disk.is_some() {
            modules.add(&kroot, &version, "virtio_blk", "")?;
        }
        for (name, options) in &config.modules {
            modules.add(&kroot, &version, name, options)?;
        }
        for (ko, options) in &config.out_of_tree {
            modules.push(ko, options);
        }
        modules.stage(&root)?;

        let mut libs = BTreeSet::new();
        for (host, guest) in &config.files {
            let to = guest_path(&root, guest)?;
            if is_elf(host) {
                strip_debug(host, &to)?;
                libs.extend(shared_libraries(host)?);
            } else {
                copy_tree(host, &to)?;
            }
        }
        if libs
            .iter()
            .any(|l| l.to_string_lossy().contains("libasound"))
        {
            copy_tree(Path::new("/usr/share/alsa"), &root.join("usr/share/alsa"))?;
        }
        for lib in &libs {
            copy(lib, &guest_path(&root, &lib.to_string_lossy())?)?;
        }

        let initrd = dir.path().join("initrd.cpio");
        let cpio = Command::new("sh")
            .arg("-c")
            .arg("cd \"$1\" && find . | cpio -o -H newc -R 0:0 --quiet > \"$2\"")
            .args(["sh", &root.to_string_lossy(), &initrd.to_string_lossy()])
            .output()
            .context("cannot run cpio")?;
        if !cpio.status.success() {
            bail!(
                "cpio could not pack the initramfs: {}",
                String::from_utf8_lossy(&cpio.stderr)
            );
        }
        std::fs::remove_dir_all(&root).context("cannot remove the initramfs tree")?;
        Ok(VmImage {
            dir,
            kernel,
            config: config.clone(),
        })
    }

    /// Boots the guest and waits until it answers on the command channel.
    /// Host ports are picked now; a port another process takes meanwhile
    /// makes qemu fail, and the boot is tried again on new ports.
    pub fn boot(&self) -> Result<Vm> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.boot_once() {
                Err(BootError::PortTaken(e)) if attempt < 3 => {
                    eprintln!("vm: {e:#}; trying other ports");
                }
                Err(BootError::PortTaken(e) | BootError::Other(e)) => return Err(e),
                Ok(vm) => return Ok(vm),
            }
        }
    }

    fn boot_once(&self) -> Result<Vm, BootError> {
        let dir = tempfile::Builder::new()
            .prefix("streamswitch-vm-run.")
            .tempdir()
            .context("cannot make the VM's run dir")?;
        let console = dir.path().join("console.log");
        let socket = dir.path().join("ctl.sock");
        let qemu_log = dir.path().join("qemu.log");
        let ports = self
            .config
            .forwards
            .iter()
            .map(|&guest| Ok((guest, free_port()?)))
            .collect::<Result<Vec<_>>>()?;

        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-M", "pc", "-accel", "tcg,thread=multi", "-cpu", "max"]);
        if Path::new(QBOOT).exists() {
            cmd.args(["-bios", QBOOT]);
        }
        cmd.arg("-m")
            .arg(self.config.memory_mib.to_string())
            .arg("-smp")
            .arg(self.config.cpus.to_string())
            .arg("-kernel")
            .arg(&self.kernel)
            .arg("-initrd")
            .arg(self.dir.path().join("initrd.cpio"))
            // The crypto self-tests take 0.6 s of each boot under TCG.
            .args(["-append", "quiet console=ttyS0 panic=-1 cryptomgr.notests"])
            .args(["-nodefaults", "-nographic", "-no-reboot"])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .args(["-device", "virtio-serial-pci"])
            .arg("-chardev")
            .arg(format!(
                "socket,id=ctl,path={},server=on,wait=off",
                socket.display()
            ))
            .args(["-device", "virtconsole,chardev=ctl"]);
        if !ports.is_empty() {
            let mut netdev = "user,id=net0".to_owned();
            for (guest, host) in &ports {
                let _ = write!(netdev, ",hostfwd=tcp:127.0.0.1:{host}-:{guest}");
            }
            cmd.arg("-netdev")
                .arg(netdev)
                .args(["-device", "virtio-net-pci,netdev=net0"]);
        }
        if let Some((image, cache)) = &self.config.disk {
            let cache = match cache {
                DiskCache::None => "none",
                DiskCache::Writethrough => "writethrough",
            };
            cmd.arg("-drive")
                .arg(format!(
                    "file={},format=raw,if=none,id=disk0,cache={cache}",
                    image.display()
                ))
                .args(["-device", "virtio-blk-pci,drive=disk0"]);
        }
        let log = std::fs::File::create(&qemu_log).context("cannot create qemu.log")?;
        let qemu = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("qemu.log")?)
            .stderr(log)
            .spawn()
            .context("cannot start qemu-system-x86_64 (package qemu-system-x86)")?;
        let started = Instant::now();
        let mut vm = Vm {
            qemu: Mutex::new(qemu),
            channel: Mutex::new(None),
            ports,
            dir,
        };
        match vm.connect(&socket, started) {
            Ok(()) => Ok(vm),
            Err(e) => {
                vm.kill();
                let qemu_said = std::fs::read_to_string(&qemu_log).unwrap_or_default();
                let e = e.context(format!(
                    "the VM did not boot; qemu said:\n{qemu_said}\nconsole (last lines):\n{}",
                    vm.console_tail()
                ));
                if qemu_said.contains("hostfwd") || qemu_said.contains("host forwarding") {
                    Err(BootError::PortTaken(e))
                } else {
                    Err(BootError::Other(e))
                }
            }
        }
    }
}

const QBOOT: &str = "/usr/share/qemu/qboot.rom";

enum BootError {
    PortTaken(anyhow::Error),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for BootError {
    fn from(e: anyhow::Error) -> Self {
        BootError::Other(e)
    }
}

/// A running guest. Dropping it kills qemu.
pub struct Vm {
    qemu: Mutex<Child>,
    channel: Mutex<Option<Channel>>,
    /// Guest port, host port.
    ports: Vec<(u16, u16)>,
    /// console.log, qemu.log, the channel's socket.
    dir: tempfile::TempDir,
}

/// The host's end of the guest's command loop.
struct Channel {
    stream: UnixStream,
    /// What the guest sent after the last answer.
    pending: Vec<u8>,
    next_id: u64,
}

impl Vm {
    /// Builds the initramfs and boots it once ([`VmImage`] boots it more
    /// often).
    pub fn boot(config: &VmConfig) -> Result<Vm> {
        VmImage::build(config)?.boot()
    }

    /// Runs `cmd` with the guest's `sh` (stdin /dev/null, stderr with
    /// stdout) and returns its exit code and output. A command still
    /// running after `timeout` is killed and is an error.
    pub fn exec(&self, cmd: &str, timeout: Duration) -> Result<(i32, String)> {
        let mut channel = self.channel.lock().unwrap_or_else(|e| e.into_inner());
        let Some(ch) = channel.as_mut() else {
            bail!("the VM is not running");
        };
        let id = ch.next_id;
        ch.next_id += 1;
        let line = format!(
            "{id} {} {}\n",
            timeout.as_secs().max(1),
            base64::engine::general_purpose::STANDARD.encode(cmd)
        );
        let started = Instant::now();
        ch.stream
            .write_all(line.as_bytes())
            .with_context(|| format!("cannot send {cmd:?} to the VM"))?;
        let marker = format!("\n@@VM-END {id} ");
        // The guest's own timeout fires first; this one is for a guest
        // that stopped answering.
        let answer = self.read_until(ch, started + timeout + Duration::from_secs(10), |buf| {
            let at = find(buf, marker.as_bytes())?;
            let rest = &buf[at + marker.len()..];
            let eol = rest.iter().position(|&b| b == b'\n')?;
            Some((at, at + marker.len() + eol + 1))
        });
        let (output, status) = match answer {
            Ok((text, status)) => (text, status),
            Err(e) => {
                return Err(e.context(format!(
                    "{cmd:?} did not finish in {timeout:?}; console (last lines):\n{}",
                    self.console_tail()
                )))
            }
        };
        let code: i32 = status
            .trim()
            .strip_prefix(marker.trim_start())
            .and_then(|c| c.trim().parse().ok())
            .ok_or_else(|| anyhow!("bad answer from the VM: {status:?}"))?;
        if started.elapsed() >= timeout {
            bail!("{cmd:?} did not finish in {timeout:?} (killed); output:\n{output}");
        }
        Ok((code, output))
    }

    /// Starts `cmd` (one command; wrap pipelines in `sh -c`) in the
    /// background with stdout and stderr to the guest file `log`; returns
    /// its pid.
    pub fn spawn(&self, cmd: &str, log: &str) -> Result<u32> {
        let (code, out) = self.exec(
            &format!("{cmd} > {log} 2>&1 < /dev/null &\necho $!"),
            Duration::from_secs(10),
        )?;
        match out.trim().parse() {
            Ok(pid) if code == 0 => Ok(pid),
            _ => bail!("cannot start {cmd:?} (exit {code}): {out}"),
        }
    }

    /// The host port (on 127.0.0.1) that reaches `guest_port`.
    pub fn host_port(&self, guest_port: u16) -> Option<u16> {
        self.ports
            .iter()
            .find(|(guest, _)| *guest == guest_port)
            .map(|(_, host)| *host)
    }

    /// SIGKILL to qemu: the power is cut; what the guest had not written
    /// to its disk is lost.
    pub fn kill(&mut self) {
        let qemu = self.qemu.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = qemu.kill();
        let _ = qemu.wait();
        *self.channel.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Everything the kernel and init wrote to the console so far.
    pub fn console_log(&self) -> String {
        let bytes = std::fs::read(self.dir.path().join("console.log")).unwrap_or_default();
        String::from_utf8_lossy(&bytes).replace('\r', "")
    }

    fn console_tail(&self) -> String {
        let log = self.console_log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Connects to the command channel and waits for the guest's init to
    /// say it is ready.
    fn connect(&mut self, socket: &Path, started: Instant) -> Result<()> {
        let deadline = started + BOOT_TIMEOUT;
        let stream = loop {
            if let Some(status) = self.exited() {
                bail!("qemu exited ({status})");
            }
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => {
                    return Err(e).context("qemu's command socket never appeared")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let mut ch = Channel {
            stream,
            pending: Vec::new(),
            next_id: 1,
        };
        let (_, ready) = self
            .read_until(&mut ch, deadline, |buf| {
                let at = find(buf, b"@@VM-")?;
                let eol = buf[at..].iter().position(|&b| b == b'\n')?;
                Some((at, at + eol + 1))
            })
            .context("the guest's init never answered")?;
        if ready.trim() != "@@VM-READY" {
            bail!("the guest's init failed: {}", ready.trim());
        }
        *self.channel.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(ch);
        Ok(())
    }

    /// Reads the channel until `end` finds (start, end) of a trailer in
    /// what arrived; returns the text before the trailer (without the
    /// newline the guest puts in front) and the trailer.
    fn read_until(
        &self,
        ch: &mut Channel,
        deadline: Instant,
        end: impl Fn(&[u8]) -> Option<(usize, usize)>,
    ) -> Result<(String, String)> {
        let mut buf = [0u8; 64 * 1024];
        loop {
            if let Some((start, stop)) = end(&ch.pending) {
                let text = String::from_utf8_lossy(&ch.pending[..start]).into_owned();
                let trailer = String::from_utf8_lossy(&ch.pending[start..stop]).into_owned();
                ch.pending.drain(..stop);
                return Ok((text, trailer));
            }
            let now = Instant::now();
            if now >= deadline {
                bail!(
                    "no answer from the VM; it sent: {:?}",
                    String::from_utf8_lossy(&ch.pending)
                );
            }
            if let Some(status) = self.exited() {
                bail!("qemu exited ({status})");
            }
            ch.stream
                .set_read_timeout(Some((deadline - now).min(Duration::from_millis(200))))
                .context("command channel")?;
            match ch.stream.read(&mut buf) {
                Ok(0) => bail!("the VM closed its command channel"),
                Ok(n) => ch.pending.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e).context("cannot read the command channel"),
            }
        }
    }

    fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut qemu = self.qemu.lock().unwrap_or_else(|e| e.into_inner());
        qemu.try_wait().ok().flatten()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The guest's init: mounts, modules, network, then the command loop on
/// the virtio console (hvc0), which answers each `<id> <timeout>
/// <base64 command>` line with the output, then `\n@@VM-END <id> <exit
/// code>\n`.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
echo "vm: init at $(cut -d' ' -f1 /proc/uptime) s of uptime"
failed=""
while read -r ko options; do
    insmod "/vm/modules/$ko" $options || failed="$failed $ko"
done < /vm/modules.list
echo "vm: modules loaded at $(cut -d' ' -f1 /proc/uptime) s"
ip link set lo up
if [ -e /sys/class/net/eth0 ]; then
    ip addr add 10.0.2.15/24 dev eth0
    ip link set eth0 up
    ip route add default via 10.0.2.2
fi
# Settings last while the tty is open: open it first.
exec 3<>/dev/hvc0
stty raw -echo <&3
echo "vm: init ready at $(cut -d' ' -f1 /proc/uptime) s of uptime"
if [ -n "$failed" ]; then
    echo "@@VM-FAILED insmod:$failed" >&3
else
    echo "@@VM-READY" >&3
fi
while read -r id seconds command <&3; do
    echo "$command" | base64 -d > /tmp/.vm-cmd
    timeout -s KILL "$seconds" sh /tmp/.vm-cmd > /tmp/.vm-out 2>&1 < /dev/null 3<&-
    status=$?
    cat /tmp/.vm-out >&3
    printf '\n@@VM-END %s %s\n' "$id" "$status" >&3
done
echo "vm: the command channel closed"
sleep 100000
"#;

/// Modules to load, in order, with their options.
#[derive(Default)]
struct ModuleList {
    /// Host file, options.
    entries: Vec<(PathBuf, String)>,
}

impl ModuleList {
    /// `name` and its dependencies, resolved by the host's modprobe in the
    /// cached kernel's tree; `options` go to `name`.
    fn add(&mut self, kroot: &Path, version: &str, name: &str, options: &str) -> Result<()> {
        let out = Command::new(host_tool("modprobe"))
            .arg("-d")
            .arg(kroot)
            .args(["-S", version, "--show-depends", name])
            .output()
            .context("cannot run modprobe (package kmod)")?;
        if !out.status.success() {
            bail!(
                "module {name} is not in kernel {version}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // `builtin <name>` needs nothing.
            let Some(path) = line.strip_prefix("insmod ") else {
                continue;
            };
            let path = PathBuf::from(path.split_whitespace().next().unwrap_or_default());
            let is_it = module_name(&path) == module_name(Path::new(name));
            self.push(&path, if is_it { options } else { "" });
        }
        Ok(())
    }

    fn push(&mut self, ko: &Path, options: &str) {
        let name = module_name(ko);
        if let Some(entry) = self
            .entries
            .iter_mut()
            .find(|(p, _)| module_name(p) == name)
        {
            if !options.is_empty() {
                entry.1 = options.into();
            }
        } else {
            self.entries.push((ko.into(), options.into()));
        }
    }

    /// Copies the modules (decompressed) to /vm/modules and writes the
    /// list init reads.
    fn stage(&self, root: &Path) -> Result<()> {
        let mut list = String::new();
        for (ko, options) in &self.entries {
            let file = format!("{}.ko", module_name(ko));
            let to = root.join("vm/modules").join(&file);
            let text = ko.to_string_lossy();
            let tool = [(".xz", "xz"), (".zst", "zstd")]
                .into_iter()
                .find(|(ext, _)| text.ends_with(ext));
            match tool {
                Some((_, tool)) => {
                    let out = Command::new(tool)
                        .arg("-dc")
                        .arg(ko)
                        .output()
                        .with_context(|| format!("cannot run {tool}"))?;
                    if !out.status.success() {
                        bail!("{tool} could not decompress {}", ko.display());
                    }
                    std::fs::write(&to, out.stdout)
                        .with_context(|| format!("cannot write {}", to.display()))?;
                }
                None => copy(ko, &to)?,
            }
            let _ = writeln!(list, "{file} {options}");
        }
        std::fs::write(root.join("vm/modules.list"), list).context("cannot write modules.list")
    }
}

/// `snd-aloop` for `.../snd-aloop.ko.xz` or `snd_aloop`: the kernel treats
/// `-` and `_` alike.
fn module_name(path: &Path) -> String {
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = base.split(".ko").next().unwrap_or_default();
    stem.replace('-', "_")
}

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// Copies a program without its debug info: the guest has no debugger,
/// and the agent's debug build shrinks from 234 MB to 28 MB, which the
/// guest loads and unpacks at every boot.
fn strip_debug(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        mkdir(parent)?;
    }
    let out = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(from)
        .arg(to)
        .output()
        .context("cannot run objcopy (package binutils)")?;
    if !out.status.success() {
        bail!(
            "objcopy could not copy {}: {}",
            from.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The libraries and loader of a dynamically linked ELF program, as `ldd`
/// resolves them; nothing for a static one.
fn shared_libraries(path: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(path)
        .output()
        .context("cannot run ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // A static program.
        return Ok(Vec::new());
    }
    if text.contains("not found") {
        bail!(
            "{} needs libraries this host lacks:\n{text}",
            path.display()
        );
    }
    Ok(text
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(PathBuf::from)
        .collect())
}

/// `guest` (absolute) under the initramfs tree.
fn guest_path(root: &Path, guest: &str) -> Result<PathBuf> {
    let rel = guest
        .strip_prefix('/')
        .ok_or_else(|| anyhow!("guest path {guest:?} is not absolute"))?;
    Ok(root.join(rel))
}

fn mkdir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Copies a file (following symlinks, keeping its mode) and makes the
/// folders above it.
fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        mkdir(parent)?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let meta = std::fs::metadata(from).with_context(|| format!("no {}", from.display()))?;
    if !meta.is_dir() {
        return copy(from, to);
    }
    mkdir(to)?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot list {}", from.display()))?
    {
        let entry = entry.with_context(|| format!("cannot list {}", from.display()))?;
        copy_tree(&entry.path(), &to.join(entry.file_name()))?;
    }
    Ok(())
}

fn chmod_x(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot chmod {}", path.display()))
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("no free port")?;
    Ok(listener.local_addr().context("no free port")?.port())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
