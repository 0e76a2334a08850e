//! Layering (`base.env` < `<env>.env` < process environment) and `${VAR}` substitution.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::{AppEnv, ConfigError, dotenv};

/// Where configuration comes from: the environment files' directory and the process environment.
#[derive(Debug, Clone)]
pub struct Loader {
    dir: PathBuf,
    process: HashMap<String, String>,
}

/// The merged, substituted key/value view of one environment.
#[derive(Debug, Clone)]
pub struct Layers {
    env: AppEnv,
    files: HashMap<String, String>,
    process: HashMap<String, String>,
    development_secrets: HashSet<String>,
}

impl Loader {
    /// A loader over `dir` with an explicit process environment (tests pass their own).
    pub fn new(dir: impl Into<PathBuf>, process: HashMap<String, String>) -> Self {
        Self { dir: dir.into(), process }
    }

    /// A loader over the real process environment; the directory is `CONFIG_DIR`, or the first
    /// `config/environments` found walking up from the working directory, then from the executable.
    pub fn from_process_env() -> Result<Self, ConfigError> {
        let process: HashMap<String, String> = std::env::vars().collect();
        let dir = match process.get("CONFIG_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => find_config_dir().ok_or_else(|| {
                ConfigError::new(
                    "CONFIG_DIR",
                    "not set, and no config/environments directory above the working directory or the executable",
                )
            })?,
        };
        Ok(Self::new(dir, process))
    }

    /// The environment named by `APP_ENV` in the process environment, `development` when unset.
    pub fn selected_env(&self) -> Result<AppEnv, ConfigError> {
        match self.process.get("APP_ENV") {
            Some(name) => name.parse(),
            None => Ok(AppEnv::Development),
        }
    }

    /// Reads `base.env` and `<env>.env`, checks the file declares the same `APP_ENV`, and layers the
    /// process environment on top.
    pub fn load(&self, env: AppEnv) -> Result<Layers, ConfigError> {
        let base = self.read_file("base.env", true)?.unwrap_or_default();
        let file_name = format!("{}.env", env.as_str());
        let Some(env_file) = self.read_file(&file_name, true)? else {
            return Err(ConfigError::new(file_name, "missing"));
        };
        match env_file.iter().rev().find(|(key, _)| key == "APP_ENV") {
            Some((_, declared)) if declared == env.as_str() => {}
            Some((_, declared)) => {
                return Err(ConfigError::new(
                    "APP_ENV",
                    format!("{file_name} declares APP_ENV={declared} but it was loaded for {}", env.as_str()),
                ));
            }
            None => {
                return Err(ConfigError::new("APP_ENV", format!("{file_name} must declare APP_ENV={}", env.as_str())));
            }
        }
        if let Some(declared) = self.process.get("APP_ENV")
            && declared != env.as_str()
        {
            return Err(ConfigError::new(
                "APP_ENV",
                format!("the process environment says {declared} but {file_name} was loaded"),
            ));
        }
        let mut files = HashMap::new();
        files.extend(base);
        files.extend(env_file);

        // The development and test files hold the only secrets (and the only JWT key pairs) that are public;
        // staging and production must never run with one of them.
        let mut development_secrets = HashSet::new();
        if env.is_deployed() {
            for name in ["development.env", "test.env"] {
                for (key, value) in self.read_file(name, false)?.unwrap_or_default() {
                    if crate::settings::is_published_value_key(&key) {
                        development_secrets.extend(split_list(&value).map(str::to_owned));
                    }
                }
            }
        }
        Ok(Layers { env, files, process: self.process.clone(), development_secrets })
    }

    fn read_file(&self, name: &str, strict: bool) -> Result<Option<dotenv::Entries>, ConfigError> {
        let path = self.dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => dotenv::parse(&text, name).map(Some).or_else(|e| if strict { Err(e) } else { Ok(None) }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ConfigError::new(name, format!("cannot read {}: {e}", path.display()))),
        }
    }
}

impl Layers {
    /// The environment these layers belong to.
    pub fn env(&self) -> AppEnv {
        self.env
    }

    /// The value of `key` after layering and substitution; `Ok(None)` when no layer sets it.
    pub fn get(&self, key: &str) -> Result<Option<String>, ConfigError> {
        self.resolve(key, &mut Vec::new())
    }

    /// True when `value` is one of the secrets or keys published in the development or test files.
    pub fn is_development_secret(&self, value: &str) -> bool {
        self.development_secrets.contains(value)
    }

    fn resolve(&self, key: &str, stack: &mut Vec<String>) -> Result<Option<String>, ConfigError> {
        // Process values were already expanded by whoever set them: they are taken literally.
        if let Some(value) = self.process.get(key) {
            return Ok(Some(value.clone()));
        }
        let Some(raw) = self.files.get(key) else { return Ok(None) };
        if stack.iter().any(|k| k == key) {
            stack.push(key.to_owned());
            return Err(ConfigError::new(stack[0].clone(), format!("substitution cycle {}", stack.join(" -> "))));
        }
        stack.push(key.to_owned());
        let value = self.substitute(key, raw, stack)?;
        stack.pop();
        Ok(Some(value))
    }

    fn substitute(&self, key: &str, raw: &str, stack: &mut Vec<String>) -> Result<String, ConfigError> {
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(body) = after.strip_prefix('{') {
                let end = body.find('}').ok_or_else(|| ConfigError::new(key, "unterminated ${ in value"))?;
                let expr = &body[..end];
                let (name, default) = match expr.split_once(":-") {
                    Some((name, default)) => (name, Some(default)),
                    None => (expr, None),
                };
                let value = match (self.resolve(name, stack)?, default) {
                    (Some(v), Some(d)) if v.is_empty() => d.to_owned(),
                    (Some(v), _) => v,
                    (None, Some(d)) => d.to_owned(),
                    (None, None) => {
                        return Err(ConfigError::new(key, format!("refers to ${{{name}}}, which is not set")));
                    }
                };
                out.push_str(&value);
                rest = &body[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Splits a comma-separated list, trimming items and dropping empty ones.
pub(crate) fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn find_config_dir() -> Option<PathBuf> {
    let probe = |start: &Path| {
        start
            .ancestors()
            .map(|dir| dir.join("config").join("environments"))
            .find(|candidate| candidate.join("base.env").is_file())
    };
    std::env::current_dir()
        .ok()
        .and_then(|cwd| probe(&cwd))
        .or_else(|| std::env::current_exe().ok().and_then(|exe| probe(&exe)))
}
