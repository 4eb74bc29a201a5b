//! The bearer token: given as `--token`, or read from `--token-file` so it
//! does not show in `ps`.

use super::ConfigError;
use super::raw::{self, Raw, Value};
use std::fs::{File, FileType, Metadata, OpenOptions};
use std::io::{self, Read};
use std::net::IpAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// A token file holds one token; anything longer is a mistake, not read whole.
const MAX_FILE_BYTES: u64 = 4096;

/// Off loopback anyone on the network may guess: the shortest token allowed
/// there. On loopback only local users can try, and shorter tokens of
/// existing set-ups keep working.
pub const MIN_REMOTE_CHARS: usize = 16;

/// The token, if any, refused when too short for a listener off loopback.
pub fn token<L>(raw: &Raw<L>, host: IpAddr) -> Result<Option<String>, ConfigError>
where
    L: Fn(&str) -> Option<String>,
{
    let Some((token, value)) = given(raw)? else {
        return Ok(None);
    };
    let chars = token.chars().count();
    if !host.is_loopback() && chars < MIN_REMOTE_CHARS {
        let unit = if chars == 1 {
            "character"
        } else {
            "characters"
        };
        return Err(value.error(format!(
            "the token has {chars} {unit}; off loopback (listening on {host}) it needs \
             at least {MIN_REMOTE_CHARS}: make one with tr -dc A-Za-z0-9 </dev/urandom | head -c 32"
        )));
    }
    Ok(Some(token))
}

/// The token and the flag or variable that gave it. Flags beat variables
/// as a pair, so `--token` on the command line overrides
/// `DYNPORT_TOKEN_FILE` in the environment.
fn given<L>(raw: &Raw<L>) -> Result<Option<(String, Value)>, ConfigError>
where
    L: Fn(&str) -> Option<String>,
{
    let (text, file) = match (raw.flag(raw::TOKEN), raw.flag(raw::TOKEN_FILE)) {
        (None, None) => (raw.var(raw::TOKEN), raw.var(raw::TOKEN_FILE)),
        flags => flags,
    };
    match (text, file) {
        (Some(text), Some(file)) => Err(ConfigError(format!(
            "{} and {} are both set; give the token one way",
            text.name(),
            file.name()
        ))),
        (Some(text), None) => {
            let token = checked(text.text()?).map_err(|p| text.error(p))?;
            Ok(Some((token, text)))
        }
        (None, Some(file)) => Ok(Some((read(&file)?, file))),
        (None, None) => Ok(None),
    }
}

/// A bearer token must survive an `Authorization` header intact.
fn checked(token: &str) -> Result<String, String> {
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the token holds whitespace or a control character, \
                    which an Authorization header cannot carry"
            .to_string());
    }
    Ok(token.to_string())
}

/// The token in the file `value` names.
fn read(value: &Value) -> Result<String, ConfigError> {
    let path = Path::new(value.os()?);
    let text = read_private(path).map_err(|p| value.error(p))?;
    let token = text.trim_end_matches(['\n', '\r']);
    if token.is_empty() {
        return Err(value.error(format!("{} holds no token", path.display())));
    }
    let token = checked(token).map_err(|p| format!("{p} (in {})", path.display()));
    token.map_err(|p| value.error(p))
}

/// The text of a token file, server's or client's: a small regular file,
/// not a link, owned by the user running dynport or root, that no one else
/// may read or write. A FIFO or device is refused at once, never waited on.
pub fn read_private(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| open_error(path, &e))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    private(path, &meta)?;
    contents(path, file)
}

fn open_error(path: &Path, e: &io::Error) -> String {
    let shown = path.display();
    let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if e.raw_os_error() == Some(libc::ELOOP) && link {
        let target = std::fs::read_link(path).unwrap_or_default();
        return format!(
            "{shown} is a symbolic link (to {}); give the path of the token file itself",
            target.display()
        );
    }
    format!("cannot open {shown}: {e}")
}

/// Refuses anything but a regular file that only its owner, this user or
/// root, may read or write.
fn private(path: &Path, meta: &Metadata) -> Result<(), String> {
    let shown = path.display();
    if !meta.file_type().is_file() {
        return Err(format!(
            "{shown} is {}, not a regular file; give a regular file holding the token",
            kind(meta.file_type())
        ));
    }
    let (owner, mode, me) = (meta.uid(), meta.mode() & 0o777, crate::sys::euid());
    if owner != me && owner != 0 {
        return Err(format!(
            "{shown} is owned by uid {owner} (mode {mode:03o}), not by the user running \
             dynport (uid {me}) or root; use a token file of your own, or chown {me} {shown}"
        ));
    }
    if mode & 0o077 != 0 {
        return Err(format!(
            "{shown} is open to group or others (mode {mode:03o}, owner uid {owner}); \
             run chmod 600 {shown} so only its owner can read it"
        ));
    }
    Ok(())
}

fn kind(file_type: FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "a device"
    } else {
        "something else"
    }
}

/// At most [`MAX_FILE_BYTES`] of text.
fn contents(path: &Path, file: File) -> Result<String, String> {
    let shown = path.display();
    let mut text = String::new();
    let read = file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text);
    read.map_err(|e| format!("cannot read {shown}: {e}"))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{shown} is over {MAX_FILE_BYTES} bytes; it should hold one token"
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{error, serve};
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    /// A file in the temporary directory, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, text: &str, mode: u32) -> TempFile {
            let file = TempFile::named(name);
            std::fs::write(&file.0, text).expect("write the temporary file");
            let permissions = std::fs::Permissions::from_mode(mode);
            std::fs::set_permissions(&file.0, permissions).expect("chmod the temporary file");
            file
        }

        /// A path in the temporary directory, nothing made there yet.
        fn named(name: &str) -> TempFile {
            let unique = format!("dynport-config-{}-{name}", std::process::id());
            let path = std::env::temp_dir().join(unique);
            let _ = std::fs::remove_file(&path);
            TempFile(path)
        }

        fn path(&self) -> &str {
            self.0.to_str().expect("a UTF-8 temporary directory")
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn token_file_is_read_without_its_trailing_newline() {
        let file = TempFile::new("read", "s3cret\r\n", 0o600);
        let s = serve(&["--token-file", file.path()], &[]);
        assert_eq!(s.token.as_deref(), Some("s3cret"));
        let s = serve(&[], &[("DYNPORT_TOKEN_FILE", file.path())]);
        assert_eq!(s.token.as_deref(), Some("s3cret"));
    }

    #[test]
    fn token_file_open_to_group_or_others_is_refused() {
        let me = crate::sys::euid();
        for mode in [0o640, 0o604, 0o620, 0o602] {
            let file = TempFile::new(&format!("mode{mode:o}"), "s3cret\n", mode);
            let path = file.path();
            assert_eq!(
                error(&["--token-file", path], &[]),
                format!(
                    "--token-file: {path} is open to group or others (mode {mode:03o}, owner uid \
                     {me}); run chmod 600 {path} so only its owner can read it"
                )
            );
        }
    }

    #[test]
    fn token_file_may_be_read_only_for_its_owner() {
        let file = TempFile::new("mode400", "s3cret", 0o400);
        let s = serve(&["--token-file", file.path()], &[]);
        assert_eq!(s.token.as_deref(), Some("s3cret"));
    }

    #[test]
    fn token_file_of_another_user_is_refused() {
        if crate::sys::euid() != 0 {
            println!("skipped: giving a file to another user needs root (chown)");
            return;
        }
        let file = TempFile::new("owner", "s3cret\n", 0o600);
        std::os::unix::fs::chown(&file.0, Some(65534), None).expect("chown as root");
        let path = file.path();
        assert_eq!(
            error(&["--token-file", path], &[]),
            format!(
                "--token-file: {path} is owned by uid 65534 (mode 600), not by the user running \
                 dynport (uid 0) or root; use a token file of your own, or chown 0 {path}"
            )
        );
    }

    #[test]
    fn fifo_as_token_file_is_refused_at_once() {
        let fifo = TempFile::named("fifo");
        let made = std::process::Command::new("mkfifo")
            .args(["-m", "600", fifo.path()])
            .status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo works");
        // No writer ever opens the FIFO: a blocking open would hang here.
        assert_eq!(
            error(&["--token-file", fifo.path()], &[]),
            format!(
                "--token-file: {} is a FIFO, not a regular file; give a regular file \
                 holding the token",
                fifo.path()
            )
        );
    }

    #[test]
    fn symlink_as_token_file_is_refused() {
        let target = TempFile::new("target", "s3cret\n", 0o600);
        let link = TempFile::named("link");
        std::os::unix::fs::symlink(&target.0, &link.0).expect("symlink");
        assert_eq!(
            error(&["--token-file", link.path()], &[]),
            format!(
                "--token-file: {} is a symbolic link (to {}); give the path of the token \
                 file itself",
                link.path(),
                target.path()
            )
        );
    }

    #[test]
    fn empty_missing_or_odd_token_files_are_refused() {
        let file = TempFile::new("empty", "\n", 0o600);
        let path = file.path();
        assert_eq!(
            error(&["--token-file", path], &[]),
            format!("--token-file: {path} holds no token")
        );
        assert_eq!(
            error(&[], &[("DYNPORT_TOKEN_FILE", "/nonexistent/dynport-token")]),
            "DYNPORT_TOKEN_FILE: cannot open /nonexistent/dynport-token: \
             No such file or directory (os error 2)"
        );
        assert_eq!(
            error(&["--token-file", "/"], &[]),
            "--token-file: / is a directory, not a regular file; give a regular file \
             holding the token"
        );
        assert_eq!(
            error(&["--token-file", "/dev/null"], &[]),
            "--token-file: /dev/null is a device, not a regular file; give a regular file \
             holding the token"
        );
    }

    #[test]
    fn token_file_with_two_tokens_is_refused() {
        let file = TempFile::new("two", "one two\n", 0o600);
        let path = file.path();
        assert_eq!(
            error(&["--token-file", path], &[]),
            format!(
                "--token-file: the token holds whitespace or a control character, \
                 which an Authorization header cannot carry (in {path})"
            )
        );
    }

    #[test]
    fn token_and_token_file_together_are_refused() {
        let file = TempFile::new("both", "s3cret\n", 0o600);
        assert_eq!(
            error(&["--token", "t", "--token-file", file.path()], &[]),
            "--token and --token-file are both set; give the token one way"
        );
        let vars = [("DYNPORT_TOKEN", "t"), ("DYNPORT_TOKEN_FILE", file.path())];
        assert_eq!(
            error(&[], &vars),
            "DYNPORT_TOKEN and DYNPORT_TOKEN_FILE are both set; give the token one way"
        );
    }

    #[test]
    fn a_token_flag_overrides_both_token_variables() {
        let vars = [
            ("DYNPORT_TOKEN", "env"),
            ("DYNPORT_TOKEN_FILE", "/nonexistent"),
        ];
        let s = serve(&["--token", "flag"], &vars);
        assert_eq!(s.token.as_deref(), Some("flag"));
    }

    #[test]
    fn token_file_lets_a_non_loopback_host_listen_with_a_long_token() {
        let file = TempFile::new("host", "0123456789abcdef\n", 0o600);
        let s = serve(&["--host", "0.0.0.0", "--token-file", file.path()], &[]);
        assert_eq!(s.token.as_deref(), Some("0123456789abcdef"));
        let short = TempFile::new("short", "s3cret\n", 0o600);
        assert_eq!(
            error(&["--host", "0.0.0.0", "--token-file", short.path()], &[]),
            "--token-file: the token has 6 characters; off loopback (listening on 0.0.0.0) \
             it needs at least 16: make one with tr -dc A-Za-z0-9 </dev/urandom | head -c 32"
        );
    }
}
