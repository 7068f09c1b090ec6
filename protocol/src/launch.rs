//! Reading a launch line: which program really runs (`cmd /c`, `sudo`, `env A=b` are
//! unwrapped), and which package a launcher fetches and runs — `npx`/`bunx`,
//! `pnpm`/`yarn`/`bun dlx`, `uvx` and `uv tool run`, `pipx run`, `docker`/`podman run`,
//! `deno run`, `jbang`, `dnx`, `go run`, `npm exec`, `python -m`, node and python
//! scripts, plain binaries — with its pinned version, or none when the launch floats
//! (`latest`, ranges, no tag). A package fetched from a git repository or a URL
//! (`uvx --from git+https://...`, `npx github:org/repo`) is named as that source
//! (ecosystem `git` or `url`), not as a registry package of the same name.
//!
//! Used by the agent to describe a server and by the risk rules to score one whose
//! report carries only a command line, so that both read launches the same way.

use crate::server::Package;

pub fn basename(word: &str) -> String {
    let name = word
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(word)
        .to_lowercase();
    for ext in [".exe", ".cmd", ".bat"] {
        if let Some(stripped) = name.strip_suffix(ext) {
            return stripped.to_owned();
        }
    }
    name
}

/// The words that actually launch the server: `cmd /c X...`, `env A=b X...`,
/// `sudo X...` and `sh -c "X ..."` are unwrapped.
pub fn effective(command: &str, args: &[String]) -> Vec<String> {
    unwrap(command, args).0
}

/// [`effective`], and the wrappers it took off, outermost first (`"sudo"`,
/// `"cmd /c"`, `"env"`, `"bash -c"`).
pub fn unwrap(command: &str, args: &[String]) -> (Vec<String>, Vec<String>) {
    let mut words: Vec<String> = std::iter::once(command.to_owned())
        .chain(args.iter().cloned())
        .collect();
    let mut wrappers = Vec::new();
    // Each pass removes one wrapper; a line cannot hold more wrappers than words.
    for _ in 0..16 {
        let Some(first) = words.first().map(|w| basename(w)) else {
            break;
        };
        let skip = match first.as_str() {
            "cmd" => words
                .iter()
                .position(|w| w.eq_ignore_ascii_case("/c") || w.eq_ignore_ascii_case("/k"))
                .map(|i| (i + 1, format!("{first} /c"))),
            "sudo" | "doas" | "nohup" => Some((1, first.clone())),
            "env" => words
                .iter()
                .skip(1)
                .position(|w| !w.contains('=') && !w.starts_with('-'))
                .map(|i| (i + 1, first.clone())),
            "sh" | "bash" | "zsh" | "dash" | "ksh" => {
                // `bash -c "npx -y pkg"`: the string is the command line that runs.
                let at = words
                    .iter()
                    .position(|w| matches!(w.as_str(), "-c" | "-lc" | "-ic" | "-ec"));
                match at.and_then(|i| words.get(i + 1).map(|line| (i, line.clone()))) {
                    Some((_, line)) => {
                        let inner: Vec<String> = line
                            .split_whitespace()
                            .filter(|w| !matches!(*w, "exec" | "&&" | ";"))
                            .map(str::to_owned)
                            .collect();
                        if inner.is_empty() {
                            break;
                        }
                        wrappers.push(format!("{first} -c"));
                        words = inner;
                        continue;
                    }
                    None => None,
                }
            }
            _ => None,
        };
        match skip {
            Some((n, wrapper)) if n < words.len() => {
                words.drain(..n);
                wrappers.push(wrapper);
            }
            _ => break,
        }
    }
    (words, wrappers)
}

/// How the agent writes one word of a command line: as is, or in double quotes when
/// it is empty or holds a space or a quote.
pub fn quote(word: &str) -> String {
    if word.is_empty() || word.contains([' ', '"', '\'']) {
        format!("\"{}\"", word.replace('"', "\\\""))
    } else {
        word.to_owned()
    }
}

/// The program of a command line the agent wrote as [`quote`]d `program` + `args`:
/// `Some(program)` when `line` is exactly that.
pub fn program_of_line(line: &str, args: &[String]) -> Option<String> {
    let joined: Vec<String> = args.iter().map(|a| quote(a)).collect();
    let tail = format!(" {}", joined.join(" "));
    let head = line.strip_suffix(&tail)?;
    let program = match head.strip_prefix('"').and_then(|h| h.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\""),
        None => head.to_owned(),
    };
    (!program.is_empty()).then_some(program)
}

/// `group:artifact:version` (Maven coordinates) or `alias@catalog` / a script.
fn jbang_spec(spec: &str) -> Package {
    let parts: Vec<&str> = spec.split(':').collect();
    if parts.len() >= 3 && !spec.contains('/') {
        let version = parts[2];
        return Package {
            ecosystem: "maven".into(),
            name: format!("{}:{}", parts[0], parts[1]),
            version: (!is_floating(version)
                && !version.eq_ignore_ascii_case("release")
                && !version.eq_ignore_ascii_case("latest"))
            .then(|| version.to_owned()),
        };
    }
    if spec.starts_with("http://") || spec.starts_with("https://") {
        return Package {
            ecosystem: "url".into(),
            name: spec.to_owned(),
            version: None,
        };
    }
    let alias = spec
        .split_once('@')
        .is_some_and(|(name, _)| !name.is_empty() && !name.contains('/'));
    let local = !alias
        && (spec.ends_with(".java")
            || spec.ends_with(".jar")
            || spec.ends_with(".jsh")
            || spec.contains('/'));
    Package {
        ecosystem: if local { "local" } else { "jbang" }.into(),
        name: spec.to_owned(),
        version: None,
    }
}

pub fn is_floating(version: &str) -> bool {
    let v = version.trim();
    v.is_empty()
        || v == "latest"
        || v == "*"
        || v == "next"
        || v.starts_with(['^', '~', '>', '<', '='])
}

/// A spec that names a source instead of a registry package: `git+https://host/repo@ref`,
/// `github:org/repo#ref`, `https://host/pkg.tgz`.
fn source_spec(spec: &str) -> Option<Package> {
    let lower = spec.to_ascii_lowercase();
    let git = lower.starts_with("git+")
        || lower.starts_with("git://")
        || lower.starts_with("github:")
        || lower.starts_with("gitlab:")
        || lower.starts_with("bitbucket:")
        || lower.starts_with("ssh://git@")
        || lower.starts_with("git@")
        || (lower.starts_with("https://")
            && lower
                .split(['#', '@'])
                .next()
                .is_some_and(|u| u.ends_with(".git")));
    if git {
        // The ref after `@` (past the host part) or `#`.
        let after_scheme = spec.find("://").map_or(0, |i| i + 3);
        let (name, reference) = match spec.rfind('#') {
            Some(i) => (&spec[..i], Some(&spec[i + 1..])),
            None => match spec[after_scheme..].rfind('@') {
                Some(i) if spec[after_scheme..after_scheme + i].contains('/') => {
                    let at = after_scheme + i;
                    (&spec[..at], Some(&spec[at + 1..]))
                }
                _ => (spec, None),
            },
        };
        let name = name.strip_prefix("git+").unwrap_or(name);
        return Some(Package {
            ecosystem: "git".into(),
            name: name.to_owned(),
            // A branch floats; a tag or a commit pins. Without knowing which, only a
            // commit-like ref (hex, 7+) or a version-like tag counts as pinned.
            version: reference
                .filter(|r| {
                    (r.len() >= 7 && r.chars().all(|c| c.is_ascii_hexdigit()))
                        || r.trim_start_matches('v')
                            .starts_with(|c: char| c.is_ascii_digit())
                })
                .map(str::to_owned),
        });
    }
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Some(Package {
            ecosystem: "url".into(),
            name: spec.to_owned(),
            version: None,
        });
    }
    None
}

fn npm_spec(spec: &str) -> Package {
    if let Some(source) = source_spec(spec) {
        return source;
    }
    let (name, version) = match spec.get(1..).and_then(|rest| rest.rfind('@')) {
        Some(at) => (&spec[..=at], Some(&spec[at + 2..])),
        None => (spec, None),
    };
    Package {
        ecosystem: "npm".into(),
        name: name.to_owned(),
        version: version.filter(|v| !is_floating(v)).map(str::to_owned),
    }
}

fn pypi_spec(spec: &str) -> Package {
    if let Some(source) = source_spec(spec) {
        return source;
    }
    // `name @ git+https://...` (a PEP 508 direct reference).
    if let Some((_, url)) = spec.split_once(" @ ")
        && let Some(source) = source_spec(url.trim())
    {
        return source;
    }
    let (name, version) = if let Some((n, v)) = spec.split_once("==") {
        (n, Some(v))
    } else if let Some((n, v)) = spec.split_once('@') {
        (n, Some(v))
    } else {
        let cut = spec
            .find(['>', '<', '~', '!', '[', ';'])
            .unwrap_or(spec.len());
        (&spec[..cut], None)
    };
    Package {
        ecosystem: "pypi".into(),
        name: name.trim().to_owned(),
        version: version
            .map(str::trim)
            .filter(|v| !is_floating(v))
            .map(str::to_owned),
    }
}

fn docker_spec(image: &str) -> Package {
    if let Some((name, digest)) = image.split_once('@') {
        return Package {
            ecosystem: "docker".into(),
            name: name.to_owned(),
            version: Some(digest.to_owned()),
        };
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => {
            let at = last_slash + colon;
            let tag = &image[at + 1..];
            Package {
                ecosystem: "docker".into(),
                name: image[..at].to_owned(),
                version: (tag != "latest" && !tag.is_empty()).then(|| tag.to_owned()),
            }
        }
        None => Package {
            ecosystem: "docker".into(),
            name: image.to_owned(),
            version: None,
        },
    }
}

/// Options of `docker run` that take a value.
const DOCKER_VALUE_FLAGS: &[&str] = &[
    "-e",
    "--env",
    "-v",
    "--volume",
    "-p",
    "--publish",
    "--name",
    "--network",
    "--net",
    "-w",
    "--workdir",
    "-u",
    "--user",
    "--entrypoint",
    "--mount",
    "--env-file",
    "-l",
    "--label",
    "--cap-add",
    "--cap-drop",
    "--pid",
    "--platform",
    "--add-host",
    "-h",
    "--hostname",
    "--device",
    "--security-opt",
    "--memory",
    "-m",
    "--cpus",
    "--ipc",
    "--pull",
    "--restart",
    "--runtime",
    "--gpus",
    "--tmpfs",
    "--ulimit",
];

fn first_positional<'a>(words: &'a [String], value_flags: &[&str]) -> Option<(usize, &'a str)> {
    let mut i = 0;
    while let Some(w) = words.get(i) {
        if w.starts_with('-') {
            i += if value_flags.contains(&w.as_str()) {
                2
            } else {
                1
            };
        } else {
            return Some((i, w));
        }
    }
    None
}

/// The package a launch runs, and the index in `words` where the server's own
/// arguments start.
pub fn package(words: &[String]) -> (Option<Package>, usize) {
    let Some(program) = words.first().map(|w| basename(w)) else {
        return (None, 0);
    };
    let rest = &words[1..];
    let after = |i: usize| i + 2;
    match program.as_str() {
        "npx" | "bunx" => {
            // `npx -p pkg cmd` / `--package=pkg`
            if let Some(i) = rest.iter().position(|w| w == "-p" || w == "--package")
                && let Some(spec) = rest.get(i + 1)
            {
                return (Some(npm_spec(spec)), after(i + 1));
            }
            if let Some(spec) = rest.iter().find_map(|w| w.strip_prefix("--package=")) {
                return (Some(npm_spec(spec)), words.len());
            }
            match first_positional(rest, &["--registry", "--cache"]) {
                Some((i, spec)) => (Some(npm_spec(spec)), after(i)),
                None => (None, words.len()),
            }
        }
        "pnpm" | "yarn" | "bun" => match rest.iter().position(|w| w == "dlx" || w == "x") {
            Some(at) => match first_positional(&rest[at + 1..], &[]) {
                Some((i, spec)) => (Some(npm_spec(spec)), at + 1 + after(i)),
                None => (None, words.len()),
            },
            None => (
                Some(Package {
                    ecosystem: "binary".into(),
                    name: program,
                    version: None,
                }),
                1,
            ),
        },
        "uvx" | "uv" => {
            // `uvx X` and `uv tool run X` fetch a package; plain `uv run` runs a project.
            let rest = if program == "uv" {
                match rest
                    .windows(2)
                    .position(|w| w[0] == "tool" && (w[1] == "run" || w[1] == "x"))
                {
                    Some(i) => &rest[i + 2..],
                    None => {
                        return (
                            Some(Package {
                                ecosystem: "binary".into(),
                                name: program,
                                version: None,
                            }),
                            1,
                        );
                    }
                }
            } else {
                rest
            };
            let offset = words.len() - rest.len();
            if let Some(i) = rest.iter().position(|w| w == "--from")
                && let Some(spec) = rest.get(i + 1)
            {
                return (Some(pypi_spec(spec)), offset + i + 3);
            }
            match first_positional(
                rest,
                &["--python", "--with", "--index-url", "--index", "-p"],
            ) {
                Some((i, spec)) => (Some(pypi_spec(spec)), offset + i + 1),
                None => (None, words.len()),
            }
        }
        "pipx" => match rest.iter().position(|w| w == "run") {
            Some(at) => {
                let tail = &rest[at + 1..];
                if let Some(i) = tail.iter().position(|w| w == "--spec")
                    && let Some(spec) = tail.get(i + 1)
                {
                    return (Some(pypi_spec(spec)), 1 + at + 1 + i + 3);
                }
                match first_positional(tail, &[]) {
                    Some((i, spec)) => (Some(pypi_spec(spec)), 1 + at + 1 + i + 1),
                    None => (None, words.len()),
                }
            }
            None => (None, words.len()),
        },
        "docker" | "podman" => match rest.iter().position(|w| w == "run") {
            Some(at) => match first_positional(&rest[at + 1..], DOCKER_VALUE_FLAGS) {
                Some((i, image)) => (Some(docker_spec(image)), 1 + at + 1 + i + 1),
                None => (None, words.len()),
            },
            None => (None, words.len()),
        },
        _ => runtime_package(&program, words, rest),
    }
}

/// [`package`] for the runtimes and single-language launchers (deno, jbang, dnx,
/// `go run`, `npm exec`, pnpx, python, node); any other program is itself the package.
fn runtime_package(program: &str, words: &[String], rest: &[String]) -> (Option<Package>, usize) {
    let after = |i: usize| i + 2;
    match program {
        "deno" => match first_positional(rest.get(1..).unwrap_or_default(), &[]) {
            Some((i, spec)) if rest.first().is_some_and(|w| w == "run") => {
                let version = spec
                    .rsplit_once('@')
                    .map(|(_, v)| v)
                    .filter(|v| !is_floating(v) && !v.contains('/'));
                (
                    Some(Package {
                        ecosystem: "deno".into(),
                        name: spec.to_owned(),
                        version: version.map(str::to_owned),
                    }),
                    2 + i + 1,
                )
            }
            _ => (None, words.len()),
        },
        "jbang" => match first_positional(
            rest,
            &[
                "--java",
                "--repos",
                "--deps",
                "-D",
                "--catalog",
                "--fresh-deps",
            ],
        ) {
            Some((i, spec)) => (Some(jbang_spec(spec)), i + 2),
            None => (None, words.len()),
        },
        "dnx" => match first_positional(rest, &["--source", "--version", "--add-source"]) {
            Some((i, spec)) => {
                let (name, version) = match spec.split_once('@') {
                    Some((n, v)) => (n, Some(v)),
                    None => (
                        spec,
                        rest.iter()
                            .position(|w| w == "--version")
                            .and_then(|at| rest.get(at + 1))
                            .map(String::as_str),
                    ),
                };
                (
                    Some(Package {
                        ecosystem: "nuget".into(),
                        name: name.to_owned(),
                        version: version.filter(|v| !is_floating(v)).map(str::to_owned),
                    }),
                    i + 2,
                )
            }
            None => (None, words.len()),
        },
        "go" if rest.first().is_some_and(|w| w == "run") => {
            match first_positional(&rest[1..], &["-exec", "-tags", "-ldflags"]) {
                Some((i, spec)) => {
                    let (name, version) = match spec.rsplit_once('@') {
                        Some((n, v)) => (n, Some(v)),
                        None => (spec, None),
                    };
                    let local = name.starts_with('.') || name.starts_with('/');
                    (
                        Some(Package {
                            ecosystem: if local { "local" } else { "go" }.into(),
                            name: name.to_owned(),
                            version: version.filter(|v| !is_floating(v)).map(str::to_owned),
                        }),
                        i + 3,
                    )
                }
                None => (None, words.len()),
            }
        }
        "npm" if rest.first().is_some_and(|w| w == "exec" || w == "x") => {
            if let Some(spec) = rest.iter().find_map(|w| w.strip_prefix("--package=")) {
                return (Some(npm_spec(spec)), words.len());
            }
            match first_positional(&rest[1..], &["-p", "--package"]) {
                Some((i, spec)) => (Some(npm_spec(spec)), i + 3),
                None => (None, words.len()),
            }
        }
        "pnpx" => match first_positional(rest, &[]) {
            Some((i, spec)) => (Some(npm_spec(spec)), after(i)),
            None => (None, words.len()),
        },
        p if p.starts_with("python") || p == "py" => {
            if let Some(i) = rest.iter().position(|w| w == "-m")
                && let Some(module) = rest.get(i + 1)
            {
                return (
                    Some(Package {
                        ecosystem: "python_module".into(),
                        name: module.clone(),
                        version: None,
                    }),
                    i + 3,
                );
            }
            match first_positional(rest, &[]) {
                Some((i, script)) => (
                    Some(Package {
                        ecosystem: "local".into(),
                        name: script.to_owned(),
                        version: None,
                    }),
                    i + 2,
                ),
                None => (None, words.len()),
            }
        }
        "node" | "bun.exe" | "tsx" | "ts-node" => {
            match first_positional(rest, &["-r", "--require", "--import"]) {
                Some((i, script)) => (
                    Some(Package {
                        ecosystem: "local".into(),
                        name: script.to_owned(),
                        version: None,
                    }),
                    i + 2,
                ),
                None => (None, words.len()),
            }
        }
        _ => (
            Some(Package {
                ecosystem: "binary".into(),
                name: words[0].clone(),
                version: None,
            }),
            1,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn wrappers_are_unwrapped() {
        let (c, a) = (String::from("cmd"), words("/c npx -y pkg@1.0.0"));
        assert_eq!(effective(&c, &a), words("npx -y pkg@1.0.0"));
        assert_eq!(
            effective("sudo", &words("env A=b B=c uvx tool==1")),
            words("uvx tool==1")
        );
        assert_eq!(basename("C:\\Program Files\\nodejs\\NPX.CMD"), "npx");
    }

    #[test]
    fn packages_and_where_server_arguments_start() {
        for (line, eco, name, version, args_at) in [
            (
                "npx -y @scope/pkg@1.2.3 /data",
                "npm",
                "@scope/pkg",
                Some("1.2.3"),
                3,
            ),
            ("npx pkg@latest", "npm", "pkg", None, 2),
            (
                "docker run -i --rm -e TOKEN -v /a:/b mcp/git:1.0 serve",
                "docker",
                "mcp/git",
                Some("1.0"),
                9,
            ),
            (
                "docker run -i img@sha256:abc",
                "docker",
                "img",
                Some("sha256:abc"),
                4,
            ),
            (
                "uvx --from pkg==2.0 cmd --flag",
                "pypi",
                "pkg",
                Some("2.0"),
                4,
            ),
            ("uv tool run pkg@3 x", "pypi", "pkg", Some("3"), 4),
            ("pipx run --spec pkg==1 cmd", "pypi", "pkg", Some("1"), 5),
            (
                "python3 -m my_server --root /",
                "python_module",
                "my_server",
                None,
                3,
            ),
            (
                "node build/index.js --port 1",
                "local",
                "build/index.js",
                None,
                2,
            ),
            (
                "/usr/bin/server stdio",
                "binary",
                "/usr/bin/server",
                None,
                1,
            ),
        ] {
            let w = words(line);
            let (p, at) = package(&w);
            let p = p.unwrap_or_else(|| panic!("{line}"));
            assert_eq!(
                (
                    p.ecosystem.as_str(),
                    p.name.as_str(),
                    p.version.as_deref(),
                    at
                ),
                (eco, name, version, args_at),
                "{line}"
            );
        }
        assert!(is_floating("^1.2") && is_floating("latest") && !is_floating("1.2.3"));
    }

    #[test]
    fn sources_and_other_launchers_are_named_for_what_they_fetch() {
        for (line, eco, name, version) in [
            (
                "uvx --from git+https://github.com/org/repo-mcp repo-mcp",
                "git",
                "https://github.com/org/repo-mcp",
                None,
            ),
            (
                "uvx --from git+https://github.com/org/repo@v1.2.0 repo",
                "git",
                "https://github.com/org/repo",
                Some("v1.2.0"),
            ),
            (
                "uvx --from git+https://github.com/org/repo@main repo",
                "git",
                "https://github.com/org/repo",
                None,
            ),
            (
                "uvx git+https://github.com/org/repo.git",
                "git",
                "https://github.com/org/repo.git",
                None,
            ),
            (
                "npx -y github:org/mcp-thing",
                "git",
                "github:org/mcp-thing",
                None,
            ),
            (
                "pipx run --spec git+https://gitlab.com/a/b.git@0123abcd b",
                "git",
                "https://gitlab.com/a/b.git",
                Some("0123abcd"),
            ),
            (
                "jbang jdbc@quarkiverse/quarkus-mcp-servers",
                "jbang",
                "jdbc@quarkiverse/quarkus-mcp-servers",
                None,
            ),
            ("jbang ./Server.java", "local", "./Server.java", None),
            (
                "jbang io.quarkiverse.mcp.servers:mcp-server-jdbc:RELEASE",
                "maven",
                "io.quarkiverse.mcp.servers:mcp-server-jdbc",
                None,
            ),
            (
                "jbang --quiet org.x:srv:1.0.3 --port 1",
                "maven",
                "org.x:srv",
                Some("1.0.3"),
            ),
            (
                "dnx Microsoft.Mcp.Server@1.2.0 --yes",
                "nuget",
                "Microsoft.Mcp.Server",
                Some("1.2.0"),
            ),
            (
                "go run github.com/org/mcp@v0.3.1",
                "go",
                "github.com/org/mcp",
                Some("v0.3.1"),
            ),
            (
                "go run github.com/org/mcp@latest",
                "go",
                "github.com/org/mcp",
                None,
            ),
            (
                "npm exec -y @scope/srv@2.0.0",
                "npm",
                "@scope/srv",
                Some("2.0.0"),
            ),
            ("pnpx some-mcp@1.0.0", "npm", "some-mcp", Some("1.0.0")),
        ] {
            let w = words(line);
            let (p, _) = package(&w);
            let p = p.unwrap_or_else(|| panic!("{line}"));
            assert_eq!(
                (p.ecosystem.as_str(), p.name.as_str(), p.version.as_deref()),
                (eco, name, version),
                "{line}"
            );
        }
    }
}
