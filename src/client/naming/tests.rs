//! `--name auto` from repository layouts built in temporary directories,
//! as git lays them out.

use super::*;
use std::fs;

/// A temporary directory, removed with everything in it when dropped.
struct Tmp(PathBuf);

impl Tmp {
    fn new(name: &str) -> Tmp {
        let dir =
            std::env::temp_dir().join(format!("dynport-naming-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Tmp(dir.canonicalize().unwrap())
    }

    /// Creates the directory `rel` (and its parents) and returns its path.
    fn dir(&self, rel: &str) -> PathBuf {
        let path = self.0.join(rel);
        fs::create_dir_all(&path).unwrap();
        path
    }

    /// Writes `text` to the file `rel`, making its directory first.
    fn file(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    /// A main repository at `rel` with a linked worktree at `wt` whose
    /// `HEAD` holds `head`; `gitdir` is what the worktree's `.git` says.
    fn worktree(&self, rel: &str, wt: &str, head: &str, gitdir: Option<&str>) -> PathBuf {
        let admin = format!("{rel}/.git/worktrees/x");
        self.file(&format!("{admin}/HEAD"), head);
        self.file(&format!("{admin}/commondir"), "../..\n");
        let target = self.0.join(&admin);
        let gitdir = gitdir.map_or_else(|| target.display().to_string(), str::to_string);
        self.file(&format!("{wt}/.git"), &format!("gitdir: {gitdir}\n"));
        self.0.join(wt)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_plain_directory_gives_its_own_name() {
    let tmp = Tmp::new("plain");
    assert_eq!(auto(&tmp.dir("My Project_v2")), Ok("my-project-v2".into()));
}

#[test]
fn the_main_worktree_gives_the_repository_name_from_any_depth() {
    let tmp = Tmp::new("main");
    tmp.dir("Shop/.git");
    assert_eq!(auto(&tmp.dir("Shop")), Ok("shop".into()));
    assert_eq!(auto(&tmp.dir("Shop/src/UI")), Ok("shop".into()));
}

#[test]
fn a_linked_worktree_puts_its_branch_first() {
    let tmp = Tmp::new("linked");
    let wt = tmp.worktree("shop", "shop-fix", "ref: refs/heads/fix-UI\n", None);
    assert_eq!(auto(&wt), Ok("fix-ui.shop".into()));
    fs::create_dir_all(wt.join("src")).unwrap();
    assert_eq!(auto(&wt.join("src")), Ok("fix-ui.shop".into()));
}

#[test]
fn a_linked_worktree_found_by_a_relative_gitdir() {
    let tmp = Tmp::new("relative");
    let head = "ref: refs/heads/feature/Login_Form\n";
    let wt = tmp.worktree(
        "shop",
        "wt/login",
        head,
        Some("../../shop/.git/worktrees/x"),
    );
    assert_eq!(auto(&wt), Ok("feature-login-form.shop".into()));
}

#[test]
fn a_detached_worktree_puts_its_short_commit_first() {
    let tmp = Tmp::new("detached");
    let head = "0123456789ABCDEF0123456789abcdef01234567\n";
    let wt = tmp.worktree("shop", "shop-old", head, None);
    assert_eq!(auto(&wt), Ok("0123456.shop".into()));
}

#[test]
fn a_worktree_of_a_bare_repository_drops_dot_git() {
    let tmp = Tmp::new("bare");
    tmp.file("Shop.git/worktrees/x/HEAD", "ref: refs/heads/main\n");
    tmp.file("Shop.git/worktrees/x/commondir", "../..\n");
    let target = tmp.0.join("Shop.git/worktrees/x");
    tmp.file("main/.git", &format!("gitdir: {}\n", target.display()));
    assert_eq!(auto(&tmp.0.join("main")), Ok("main.shop".into()));
}

#[test]
fn a_submodule_is_a_repository_of_its_own() {
    let tmp = Tmp::new("submodule");
    tmp.file("app/.git/modules/lib/HEAD", "ref: refs/heads/main\n");
    tmp.file("app/Lib/.git", "gitdir: ../.git/modules/lib\n");
    assert_eq!(auto(&tmp.0.join("app/Lib")), Ok("lib".into()));
}

#[test]
fn odd_characters_become_single_dashes() {
    assert_eq!(label("--Ünïcode  ..  Dir--"), Some("n-code-dir".into()));
    assert_eq!(label("a\nb\u{202E}c\0d"), Some("a-b-c-d".into()));
    assert_eq!(label("release/1.2.x"), Some("release-1-2-x".into()));
    assert_eq!(label("web"), Some("web".into()));
    let tmp = Tmp::new("odd");
    assert_eq!(auto(&tmp.dir("Wéb $(rm -rf) ;x")), Ok("w-b-rm-rf-x".into()));
}

#[test]
fn a_label_is_at_most_63_characters_and_ends_in_no_dash() {
    assert_eq!(label(&"a".repeat(300)), Some("a".repeat(63)));
    let cut_at_a_dash = format!("{}_b", "a".repeat(62));
    assert_eq!(label(&cut_at_a_dash), Some("a".repeat(62)));
    let tmp = Tmp::new("long");
    let head = format!("ref: refs/heads/{}\n", "B".repeat(100));
    let long = "c".repeat(100);
    let wt = tmp.worktree(&long, "wt", &head, None);
    let name = auto(&wt).unwrap();
    assert_eq!(name, format!("{}.{}", "b".repeat(63), "c".repeat(63)));
}

#[test]
fn a_name_without_letters_or_digits_says_to_give_one() {
    assert_eq!(label("_-_ ..."), None);
    assert_eq!(label(""), None);
    let tmp = Tmp::new("empty");
    let err = auto(&tmp.dir("___")).unwrap_err();
    assert!(
        err.starts_with("--name auto: the directory name \"___\" ("),
        "{err}"
    );
    assert!(err.ends_with("give one with --name NAME"), "{err}");
    let wt = tmp.worktree("shop", "wt", "ref: refs/heads/__\n", None);
    assert_eq!(
        auto(&wt),
        Err(
            "--name auto: the worktree's branch \"__\" has no letter or digit to make \
             a name of; give one with --name NAME"
                .into()
        )
    );
    assert!(auto(Path::new("/")).is_err());
}

#[test]
fn a_broken_git_file_is_an_error_naming_it() {
    let tmp = Tmp::new("broken");
    let dot_git = tmp.file("wt/.git", "not what git writes\n");
    assert_eq!(
        auto(&tmp.0.join("wt")),
        Err(format!(
            "--name auto: {dot_git:?} does not start with 'gitdir:'; give a name with --name NAME"
        ))
    );
    tmp.file("wt/.git", "gitdir: /nowhere/at/all\n");
    // No commondir: a submodule whose repository is missing; git would
    // fail there too, the name is the directory's.
    assert_eq!(auto(&tmp.0.join("wt")), Ok("wt".into()));
    let wt = tmp.worktree("shop", "wt2", "garbage\n", None);
    let err = auto(&wt).unwrap_err();
    assert!(err.ends_with("names neither a branch nor a commit; give a name with --name NAME"));
}

#[test]
fn a_head_that_is_no_regular_file_is_not_read() {
    let tmp = Tmp::new("headdir");
    let wt = tmp.worktree("shop", "wt", "", None);
    let head = tmp.0.join("shop/.git/worktrees/x/HEAD");
    fs::remove_file(&head).unwrap();
    fs::create_dir(&head).unwrap();
    assert_eq!(
        auto(&wt),
        Err(format!(
            "--name auto: cannot read {head:?}: not a regular file; give a name with --name NAME"
        ))
    );
}

#[test]
fn real_git_worktrees_are_named_as_documented() {
    let tmp = Tmp::new("real");
    let git = |dir: &Path, args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .output()
    };
    let shop = tmp.dir("Shop");
    let Ok(out) = git(&shop, &["init", "-q"]) else {
        eprintln!("skipped: git cannot be run");
        return;
    };
    assert!(out.status.success(), "{out:?}");
    let ok = |dir: &Path, args: &[&str]| {
        let out = git(dir, args).unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    ok(&shop, &["commit", "-q", "--allow-empty", "-m", "first"]);
    ok(
        &shop,
        &["worktree", "add", "-q", "-b", "Fix/UI", "../shop-fix"],
    );
    ok(&shop, &["worktree", "add", "-q", "--detach", "../shop-old"]);
    assert_eq!(auto(&shop), Ok("shop".into()));
    assert_eq!(auto(&tmp.0.join("shop-fix")), Ok("fix-ui.shop".into()));
    let short = git(&shop, &["rev-parse", "HEAD"]).unwrap().stdout;
    let short = String::from_utf8_lossy(&short[..SHORT_COMMIT]).to_string();
    assert_eq!(auto(&tmp.0.join("shop-old")), Ok(format!("{short}.shop")));
}
