//! The bearer token: given as `--token`, or read from `--token-file` so it
//! does not show in `ps`.

use super::ConfigError;
use super::raw::{self, Raw, Value};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A token file holds one token; anything longer is a mistake, not read whole.
const MAX_FILE_BYTES: u64 = 4096;

/// The token, if any. Flags beat variables as a pair, so `--token` on the
/// command line overrides `DYNPORT_TOKEN_FILE` in the environment.
pub fn token<L: Fn(&str) -> Option<String>>(raw: &Raw<L>) -> Result<Option<String>, ConfigError> {
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
        (Some(text), None) => checked(text.text()?).map(Some).map_err(|p| text.error(p)),
        (None, Some(file)) => read(&file).map(Some),
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

/// The token in the file `value` names, refused when others may read it.
fn read(value: &Value) -> Result<String, ConfigError> {
    let path = Path::new(value.os()?);
    let text = contents(path).map_err(|p| value.error(p))?;
    let token = text.trim_end_matches(['\n', '\r']);
    if token.is_empty() {
        return Err(value.error(format!("{} holds no token", path.display())));
    }
    let token = checked(token).map_err(|p| format!("{p} (in {})", path.display()));
    token.map_err(|p| value.error(p))
}

/// The text of a private, small, regular file.
fn contents(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let file = File::open(path).map_err(|e| format!("cannot open {shown}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{shown} is open to group or others (mode {mode:03o}); \
             run chmod 600 {shown} so only its owner can read it"
        ));
    }
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
            let unique = format!("dynport-config-{}-{name}", std::process::id());
            let path = std::env::temp_dir().join(unique);
            std::fs::write(&path, text).expect("write the temporary file");
            let permissions = std::fs::Permissions::from_mode(mode);
            std::fs::set_permissions(&path, permissions).expect("chmod the temporary file");
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
        for mode in [0o640, 0o604, 0o620] {
            let file = TempFile::new(&format!("mode{mode:o}"), "s3cret\n", mode);
            let path = file.path();
            assert_eq!(
                error(&["--token-file", path], &[]),
                format!(
                    "--token-file: {path} is open to group or others (mode {mode:03o}); \
                     run chmod 600 {path} so only its owner can read it"
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
    fn empty_or_missing_token_file_is_refused() {
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
            "--token-file: / is not a regular file"
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
    fn token_file_lets_a_non_loopback_host_listen() {
        let file = TempFile::new("host", "s3cret\n", 0o600);
        let s = serve(&["--host", "0.0.0.0", "--token-file", file.path()], &[]);
        assert_eq!(s.token.as_deref(), Some("s3cret"));
    }
}
