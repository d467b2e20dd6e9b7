//! `dumpwatch users`: adds, removes and lists the operations center's accounts in the users file
//! (`api.users_file`). The running service picks the change up at its next request.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use dumpwatch::accounts::{Role, User, UsersFile, hash_password, valid_name};
use dumpwatch::config::ServiceConfig;

/// Arguments of `dumpwatch users`.
#[derive(clap::Args, Debug)]
pub struct UsersArgs {
    #[command(subcommand)]
    action: Action,
    /// The users file. Default: `api.users_file` of the service file given with `--config`.
    #[arg(long, global = true)]
    file: Option<PathBuf>,
    /// Service file whose `api.users_file` to edit.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Add an account. The password is asked twice on a terminal, or read as one line from
    /// standard input (`printf '%s\n' "$PASSWORD" | dumpwatch users add ...`).
    Add {
        /// Login name: 1–64 characters of A-Z a-z 0-9 _ - .
        name: String,
        /// viewer (reads), operator (also reviews incidents) or admin (also requeues
        /// deliveries and reloads the configuration).
        #[arg(long)]
        role: Role,
        /// Name shown on reviews, e.g. in Chinese. Default: the login name.
        #[arg(long)]
        display_name: Option<String>,
        /// Replace an account of that name (a new password, role or shown name).
        #[arg(long)]
        replace: bool,
    },
    /// Remove an account; its sessions end at their next request.
    Remove {
        /// Login name.
        name: String,
    },
    /// List the accounts (name, role, shown name).
    List,
}

/// Runs `dumpwatch users`.
pub fn run(args: UsersArgs) -> anyhow::Result<ExitCode> {
    let path = match (&args.file, &args.config) {
        (Some(f), _) => f.clone(),
        (None, Some(c)) => ServiceConfig::load(Some(c))?
            .api
            .users_file
            .with_context(|| format!("{} sets no api.users_file: give --file", c.display()))?,
        (None, None) => bail!("which users file? give --file PATH or --config SERVICE_FILE"),
    };
    let mut file = UsersFile::load_or_empty(&path)?;
    match args.action {
        Action::Add {
            name,
            role,
            display_name,
            replace,
        } => {
            valid_name(&name).map_err(|e| anyhow::anyhow!("name {name:?}: {e}"))?;
            if display_name
                .as_ref()
                .is_some_and(|d| d.chars().count() > 64)
            {
                bail!("--display-name: longer than 64 characters");
            }
            let existing = file.users.iter().position(|u| u.name == name);
            if existing.is_some() && !replace {
                bail!(
                    "{} already has an account {name:?}: add --replace to change it",
                    path.display()
                );
            }
            let password = read_password(&name)?;
            let user = User {
                name: name.clone(),
                display_name,
                role,
                password: hash_password(&password)?,
            };
            match existing {
                Some(i) => file.users[i] = user,
                None => file.users.push(user),
            }
            file.save(&path)?;
            println!("{}: {name} ({role})", path.display());
        }
        Action::Remove { name } => {
            let before = file.users.len();
            file.users.retain(|u| u.name != name);
            if file.users.len() == before {
                bail!("{} has no account {name:?}", path.display());
            }
            file.save(&path)?;
            println!("{}: {name} removed", path.display());
        }
        Action::List => {
            for u in &file.users {
                println!("{}\t{}\t{}", u.name, u.role, u.shown_name());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The new password: asked twice on a terminal, else one line of standard input.
fn read_password(name: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {name}: "))?;
        let again = rpassword::prompt_password("again: ")?;
        if first != again {
            bail!("the two passwords differ; nothing changed");
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let password = line.trim_end_matches(['\n', '\r']).to_owned();
        if password.is_empty() {
            bail!("no password on standard input");
        }
        Ok(password)
    }
}
