//! The script registry: define a named Lua command once, run it by name.
//!
//! Calls always use EVALSHA with the SHA-1 computed locally. When the server answers NOSCRIPT
//! (after `SCRIPT FLUSH`, a restart or a failover) the script is loaded and the call retried,
//! for single calls and inside pipelines alike, so callers never see it.
use std::{
    borrow::Cow,
    collections::BTreeMap,
    sync::{Arc, RwLock},
};

use fred::{
    clients::Client,
    interfaces::{ClientLike, LuaInterface},
    types::{config::Options, ClusterHash, CustomCommand, FromValue, Value},
};

use crate::{Error, Result};

/// How many KEYS a script takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCount {
    /// Exactly this many; calls with another count are refused before they are sent.
    Fixed(usize),
    /// Any number, decided per call.
    Dynamic,
}

/// A named Lua script and its SHA-1.
#[derive(Debug)]
pub struct Script {
    name: String,
    keys: KeyCount,
    source: Cow<'static, str>,
    sha1: String,
}

impl Script {
    fn new(name: String, keys: KeyCount, source: Cow<'static, str>) -> Self {
        let sha1 = sha1_smol::Sha1::from(source.as_bytes()).digest().to_string();
        Script {
            name,
            keys,
            source,
            sha1,
        }
    }

    /// The name it is run by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of KEYS it takes.
    pub fn keys(&self) -> KeyCount {
        self.keys
    }

    /// The Lua source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The SHA-1 of the source, as EVALSHA takes it.
    pub fn sha1(&self) -> &str {
        &self.sha1
    }

    fn evalsha_args(&self, keys: &[Value], args: &[Value]) -> Result<Vec<Value>> {
        if let KeyCount::Fixed(expected) = self.keys {
            if expected != keys.len() {
                return Err(Error::WrongKeyCount {
                    name: self.name.clone(),
                    expected,
                    got: keys.len(),
                });
            }
        }
        let mut all = Vec::with_capacity(2 + keys.len() + args.len());
        all.push(Value::from(self.sha1.as_str()));
        all.push(Value::from(keys.len() as i64));
        all.extend_from_slice(keys);
        all.extend_from_slice(args);
        Ok(all)
    }
}

/// EVALSHA routed by its first key (argument 2 of `call`), so cluster calls reach the key's
/// node. The slot is computed here: fred 10 ignores `ClusterHash::Offset` on a custom command and
/// hashes its first string, the SHA-1, which sent most calls to a node that answered MOVED, each
/// followed by a refresh of the whole topology (and, with a node down, a wait on it).
fn evalsha_command(call: &[Value]) -> CustomCommand {
    let hash = match call.get(2).and_then(Value::as_bytes) {
        Some(key) => ClusterHash::Custom(fred::util::redis_keyslot(key)),
        None => ClusterHash::Random,
    };
    CustomCommand::new_static("EVALSHA", hash, false)
}

fn is_noscript(error: &fred::error::Error) -> bool {
    error.details().starts_with("NOSCRIPT")
}

fn to_key_values<K: AsRef<str>>(keys: &[K]) -> Vec<Value> {
    keys.iter().map(|k| Value::from(k.as_ref())).collect()
}

/// Named scripts, shared by every clone. The queue registers its own scripts here; register
/// yours the same way.
///
/// ```no_run
/// use queue_core::{KeyCount, ScriptRegistry};
/// # async fn demo(client: fred::clients::Client) -> queue_core::Result<()> {
/// let registry = ScriptRegistry::new();
/// registry.define("incr_by", KeyCount::Fixed(1), "return redis.call('INCRBY', KEYS[1], ARGV[1])")?;
/// let total: i64 = registry.run(&client, "incr_by", &["counter"], vec![5.into()]).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ScriptRegistry {
    scripts: Arc<RwLock<BTreeMap<String, Arc<Script>>>>,
}

impl ScriptRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Defines `name`. Defining the same name again with the same source is a no-op; with
    /// another source it is an error, so two parts of a program cannot silently disagree.
    pub fn define(
        &self,
        name: impl Into<String>,
        keys: KeyCount,
        source: impl Into<Cow<'static, str>>,
    ) -> Result<Arc<Script>> {
        let script = Script::new(name.into(), keys, source.into());
        let mut scripts = self.scripts.write().expect("registry lock poisoned");
        if let Some(existing) = scripts.get(&script.name) {
            if existing.sha1 == script.sha1 && existing.keys == script.keys {
                return Ok(existing.clone());
            }
            return Err(Error::ScriptConflict(script.name));
        }
        let script = Arc::new(script);
        scripts.insert(script.name.clone(), script.clone());
        Ok(script)
    }

    /// The script registered as `name`.
    pub fn get(&self, name: &str) -> Result<Arc<Script>> {
        let scripts = self.scripts.read().expect("registry lock poisoned");
        scripts
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownScript(name.to_owned()))
    }

    /// Every registered script, by name.
    pub fn list(&self) -> Vec<Arc<Script>> {
        let scripts = self.scripts.read().expect("registry lock poisoned");
        scripts.values().cloned().collect()
    }

    /// Loads every registered script into the server's script cache (on every primary of a
    /// cluster), so the first calls do not pay for a NOSCRIPT round trip.
    pub async fn preload(&self, client: &Client) -> Result<()> {
        for script in self.list() {
            load(client, &script).await?;
        }
        Ok(())
    }

    /// For each registered script, whether the server's cache holds it now.
    pub async fn loaded(&self, client: &Client) -> Result<Vec<(Arc<Script>, bool)>> {
        let scripts = self.list();
        if scripts.is_empty() {
            return Ok(Vec::new());
        }
        let hashes: Vec<String> = scripts.iter().map(|s| s.sha1.clone()).collect();
        let present: Vec<bool> = client.script_exists(hashes).await?;
        Ok(scripts.into_iter().zip(present).collect())
    }

    /// Runs `name` with `keys` and `args` and converts the reply.
    pub async fn run<R: FromValue, K: AsRef<str>>(
        &self,
        client: &Client,
        name: &str,
        keys: &[K],
        args: Vec<Value>,
    ) -> Result<R> {
        let script = self.get(name)?;
        let value = run_script(client, &script, &to_key_values(keys), &args).await?;
        Ok(R::from_value(value)?)
    }

    /// A pipeline of script calls, sent in one round trip.
    pub fn pipeline<'a>(&'a self, client: &'a Client) -> ScriptPipeline<'a> {
        ScriptPipeline {
            registry: self,
            client,
            calls: Vec::new(),
        }
    }
}

pub(crate) async fn run_script(client: &Client, script: &Script, keys: &[Value], args: &[Value]) -> Result<Value> {
    let call = script.evalsha_args(keys, args)?;
    let result = match client
        .custom::<Value, Value>(evalsha_command(&call), call.clone())
        .await
    {
        Err(error) if is_noscript(&error) => {
            tracing::debug!(script = script.name(), "NOSCRIPT: loading and retrying");
            load(client, script).await?;
            client.custom(evalsha_command(&call), call).await
        }
        result => result,
    };
    result.map_err(|error| script_error(script, error))
}

/// Runs `script`, then `then` on the same connection, as one unit, and answers both replies.
/// For commands whose meaning depends on the connection the script ran on (Redis `WAIT` counts
/// the writes made on its own connection).
///
/// The two go in one pipeline routed to the script's slot, each written at most once: fred
/// answers a pipeline's commands one by one and, after a reconnection, sends again those not
/// answered yet, which would split the pair over two connections (`then` alone on the new one).
/// So a lost connection fails the whole unit, and the unit is sent again (up to the client's
/// command attempts): the script must answer a re-send as it first did, and make a write on the
/// new connection that `then` can see (see `remembered()` in `lua/prelude.lua`). A timeout is not
/// sent again, as for any call.
pub(crate) async fn run_script_then(
    client: &Client,
    script: &Script,
    keys: &[Value],
    args: &[Value],
    then: CustomCommand,
    then_args: Vec<Value>,
) -> Result<(Value, Value)> {
    let call = script.evalsha_args(keys, args)?;
    let once = Options {
        max_attempts: Some(1),
        ..Options::default()
    };
    let attempts = client.connection_config().max_command_attempts.max(1);
    let mut attempt = 1;
    loop {
        let pipeline = client.pipeline();
        let unit = pipeline.with_options(&once);
        let () = unit.custom(evalsha_command(&call), call.clone()).await?;
        let () = unit.custom(then.clone(), then_args.clone()).await?;
        let mut replies = pipeline.try_all::<Value>().await.into_iter();
        match (replies.next(), replies.next()) {
            (Some(Err(error)), Some(_)) if is_noscript(&error) && attempt < attempts => {
                tracing::debug!(script = script.name(), "NOSCRIPT: loading and retrying");
                load(client, script).await?;
                attempt += 1;
            }
            (Some(first), Some(second)) => {
                return Ok((first.map_err(|e| script_error(script, e))?, second?));
            }
            // One answer for both: the unit failed before Redis answered each command.
            (Some(Err(error)), None) if attempt < attempts && *error.kind() != fred::error::ErrorKind::Timeout => {
                tracing::debug!(script = script.name(), %error, "connection lost: sending the unit again");
                attempt += 1;
            }
            (Some(Err(error)), None) => return Err(error.into()),
            _ => {
                return Err(Error::from(fred::error::Error::new(
                    fred::error::ErrorKind::Protocol,
                    "a pipeline of two commands answered neither",
                )))
            }
        }
    }
}

/// A script's error, made specific: Redis 7.0 tells an ACL refusal inside a script only as
/// "can't run this command … @user_script:<line>", so the line of the script is quoted.
fn script_error(script: &Script, error: fred::error::Error) -> Error {
    let details = error.details();
    if !details.contains("can't run this command") {
        return Error::from(error);
    }
    let first_line = details.split(" script: ").next().unwrap_or(details);
    let line = details
        .rsplit("@user_script:")
        .next()
        .and_then(|tail| tail.trim_end_matches('.').parse::<usize>().ok());
    let code = line
        .and_then(|n| script.source().lines().nth(n.saturating_sub(1)))
        .map(str::trim);
    Error::PermissionDenied(match (line, code) {
        (Some(line), Some(code)) => {
            format!("{first_line} (script {}, line {line}: `{code}`)", script.name())
        }
        _ => format!("{first_line} (script {})", script.name()),
    })
}

async fn load(client: &Client, script: &Script) -> Result<()> {
    let sha1: String = if client.is_clustered() {
        client.script_load_cluster(script.source.to_string()).await?
    } else {
        client.script_load(script.source.to_string()).await?
    };
    debug_assert_eq!(sha1, script.sha1);
    Ok(())
}

/// Script calls sent together in one round trip. A call that meets NOSCRIPT did not run; it is
/// loaded and sent again (in its original order relative to the other calls that met NOSCRIPT),
/// so the caller sees every call's own result.
pub struct ScriptPipeline<'a> {
    registry: &'a ScriptRegistry,
    client: &'a Client,
    calls: Vec<(Arc<Script>, Vec<Value>)>,
}

impl ScriptPipeline<'_> {
    /// Adds a call of `name`. Unknown names and wrong key counts are refused here.
    pub fn add<K: AsRef<str>>(&mut self, name: &str, keys: &[K], args: Vec<Value>) -> Result<&mut Self> {
        let script = self.registry.get(name)?;
        let call = script.evalsha_args(&to_key_values(keys), &args)?;
        self.calls.push((script, call));
        Ok(self)
    }

    /// How many calls are queued.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether no call is queued.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Sends every call; returns each call's result in order.
    pub async fn execute(self) -> Result<Vec<Result<Value>>> {
        let mut results: Vec<Option<Result<Value>>> = Vec::with_capacity(self.calls.len());
        let mut retry: Vec<usize> = Vec::new();
        for (index, result) in send(self.client, self.calls.iter().map(|(_, call)| call))
            .await?
            .into_iter()
            .enumerate()
        {
            match result {
                Err(error) if is_noscript(&error) => {
                    retry.push(index);
                    results.push(None);
                }
                result => results.push(Some(result.map_err(|e| script_error(&self.calls[index].0, e)))),
            }
        }
        if !retry.is_empty() {
            let mut loaded: Vec<&str> = Vec::new();
            for &index in &retry {
                let script = &self.calls[index].0;
                if !loaded.contains(&script.sha1()) {
                    load(self.client, script).await?;
                    loaded.push(script.sha1());
                }
            }
            let again = send(self.client, retry.iter().map(|&i| &self.calls[i].1)).await?;
            for (index, result) in retry.into_iter().zip(again) {
                results[index] = Some(result.map_err(|e| script_error(&self.calls[index].0, e)));
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every call has a result"))
            .collect())
    }
}

async fn send<'c>(
    client: &Client,
    calls: impl Iterator<Item = &'c Vec<Value>>,
) -> Result<Vec<std::result::Result<Value, fred::error::Error>>> {
    let pipeline = client.pipeline();
    for call in calls {
        let () = pipeline.custom(evalsha_command(call), call.clone()).await?;
    }
    Ok(pipeline.try_all::<Value>().await)
}
