//! `completions` and `man`: generated from the clap definition at run time.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionShell};

/// Writes the completion script for `shell`.
pub fn completions(shell: CompletionShell, out: &mut dyn Write) {
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "virtnet", out);
}

/// Writes the man page (roff).
pub fn man(out: &mut dyn Write) -> std::io::Result<()> {
    let cmd = Cli::command();
    clap_mangen::Man::new(cmd).render(out)
}

/// Writes `virtnet.1` and `virtnet-VERB.1` for every verb into `dir`.
pub fn man_pages(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let cmd = Cli::command();
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("virtnet-{}", sub.get_name());
        let page = sub.clone().name(name.clone());
        let mut file = std::fs::File::create(dir.join(format!("{name}.1")))?;
        clap_mangen::Man::new(page).render(&mut file)?;
    }
    let mut file = std::fs::File::create(dir.join("virtnet.1"))?;
    clap_mangen::Man::new(cmd).render(&mut file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn completions_name_the_verbs() {
        for shell in [
            CompletionShell::Bash,
            CompletionShell::Zsh,
            CompletionShell::Fish,
        ] {
            let mut out = Vec::new();
            completions(shell, &mut out);
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("net-list"), "{shell:?}");
            assert!(text.contains("net-edit"), "{shell:?}");
        }
    }

    #[test]
    fn man_pages_per_verb() {
        let dir = tempfile::tempdir().unwrap();
        man_pages(dir.path()).unwrap();
        for page in ["virtnet.1", "virtnet-net-list.1", "virtnet-net-edit.1"] {
            let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
            assert!(text.contains(".TH"), "{page}");
        }
        let list = std::fs::read_to_string(dir.path().join("virtnet-net-list.1")).unwrap();
        assert!(list.contains("no\\-autostart"));
    }

    #[test]
    fn man_page_lists_the_verbs() {
        let mut out = Vec::new();
        man(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(".ie"), "{}", &text[..40.min(text.len())]);
        assert!(text.contains("net\\-define"));
    }
}
