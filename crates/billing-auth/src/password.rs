//! Password policy and argon2id hashing, on a small pool of hashing threads (one per core) off the runtime.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Why a password was refused or could not be hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("must be 8 to 128 characters")]
    Length,
    #[error("must contain at least one letter and one digit")]
    Composition,
    #[error("is too common; choose another")]
    Common,
    #[error("could not hash the password")]
    Hash,
    #[error("too many passwords are being checked; try again shortly")]
    Busy,
}

const COMMON: &str = include_str!("../data/common-passwords-10k.txt");

fn common_passwords() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| COMMON.lines().map(|l| l.trim().to_lowercase()).filter(|l| !l.is_empty()).collect())
}

/// 8–128 characters, at least one letter and one digit, not among the 10,000 most common passwords.
pub fn check_policy(password: &str) -> Result<(), PasswordError> {
    let length = password.chars().count();
    if !(8..=128).contains(&length) {
        return Err(PasswordError::Length);
    }
    if !password.chars().any(char::is_alphabetic) || !password.chars().any(|c| c.is_ascii_digit()) {
        return Err(PasswordError::Composition);
    }
    if common_passwords().contains(&password.to_lowercase()) {
        return Err(PasswordError::Common);
    }
    Ok(())
}

// argon2id, v19, m = 19 MiB, t = 2, p = 1: the OWASP recommendation.
const PARAMS: Params = Params::DEFAULT;
/// Hashes waiting for a hashing thread beyond which a request is refused with [`PasswordError::Busy`] (503).
pub const HASH_QUEUE: usize = 64;
/// The most memory one stored hash may ask for (its `m`); a larger one never verifies.
const MAX_M_COST_KIB: u32 = 64 * 1024;

fn argon2(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// The hashing threads: one per core, each reusing one block buffer for every hash, so a burst of sign-ups or
/// logins costs `cores × 19 MiB` of memory and never more, and the memory is not handed to the allocator and
/// back on every request. Work beyond [`HASH_QUEUE`] waiting jobs is refused at once.
struct HashPool {
    jobs: mpsc::SyncSender<Job>,
    /// Jobs handed over and not yet taken by a thread.
    waiting: Arc<AtomicUsize>,
    queue: usize,
}

impl HashPool {
    /// `threads` hashing threads behind a queue of `queue` waiting jobs.
    fn start(threads: usize, queue: usize) -> Self {
        let (jobs, receiver) = mpsc::sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        let count = Arc::new(AtomicUsize::new(0));
        for i in 0..threads {
            let (waiting, count) = (receiver.clone(), count.clone());
            let spawned = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || {
                lower_priority();
                let mut blocks: Vec<Block> = Vec::new();
                loop {
                    // The lock is held only while waiting for the next job, never while hashing.
                    let job = match waiting.lock() {
                        Ok(waiting) => waiting.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => {
                            count.fetch_sub(1, Ordering::Relaxed);
                            job(&mut blocks)
                        }
                        Err(_) => return,
                    }
                }
            });
            if let Err(err) = spawned {
                // This crate does not log; a thread that cannot start at boot is worth a line on stderr.
                eprintln!("billing-auth: could not start a hashing thread: {err}");
            }
        }
        Self { jobs, waiting: count, queue }
    }

    /// Whether a job handed over now would be refused (the queue is full).
    fn saturated(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) >= self.queue
    }

    /// Runs `work` on a hashing thread with its reusable block buffer; `Busy` when the queue is full.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |blocks| {
            let _ = tx.send(work(blocks));
        });
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let sent = self.jobs.try_send(job);
        if sent.is_err() {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        match sent {
            Ok(()) => rx.await.map_err(|_| PasswordError::Hash),
            Err(mpsc::TrySendError::Full(_)) => Err(PasswordError::Busy),
            Err(mpsc::TrySendError::Disconnected(_)) => Err(PasswordError::Hash),
        }
    }
}

/// How far below the threads that serve requests a hashing thread runs (nice values). A burst of logins then
/// takes the cores only as far as requests leave them: reads keep their latency beside a login storm, logins go
/// at what is left (a whole core each when nothing else runs), and what cannot wait is refused as `Busy`.
const HASHING_NICENESS: i32 = 10;

/// Lowers the calling thread's priority by [`HASHING_NICENESS`] (Linux; raising niceness needs no privilege).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let thread = Some(rustix::thread::gettid());
        let lowered =
            getpriority_process(thread).and_then(|nice| setpriority_process(thread, (nice + HASHING_NICENESS).min(19)));
        if let Err(err) = lowered {
            eprintln!("billing-auth: a hashing thread keeps its priority: {err}");
        }
    }
}

fn pool() -> &'static HashPool {
    static POOL: OnceLock<HashPool> = OnceLock::new();
    POOL.get_or_init(|| {
        HashPool::start(std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get), HASH_QUEUE)
    })
}

/// Whether a password check asked for now would be refused as [`PasswordError::Busy`]: a login storm is then turned
/// away before it costs a rate-limit count or a database read, not after.
pub fn hashing_saturated() -> bool {
    pool().saturated()
}

/// The raw argon2id output of `password` under `salt` and `params`, computed in `blocks` (grown once, reused).
fn raw_hash(
    blocks: &mut Vec<Block>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let needed = params.block_count();
    if blocks.len() < needed {
        blocks.resize(needed, Block::default());
    }
    argon2(params.clone()).hash_password_into_with_memory(password, salt, out, &mut blocks[..needed])
}

/// Hashes `password` (PHC string) on a hashing thread; [`PasswordError::Busy`] when too many are waiting.
pub async fn hash_password(password: String) -> Result<String, PasswordError> {
    pool()
        .run(move |blocks| {
            let salt = argon2::password_hash::generate_salt();
            let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
            raw_hash(blocks, &PARAMS, password.as_bytes(), &salt, &mut out).map_err(|_| PasswordError::Hash)?;
            let phc = PasswordHash {
                algorithm: Algorithm::Argon2id.ident(),
                version: Some(Version::V0x13.into()),
                params: ParamsString::try_from(&PARAMS).map_err(|_| PasswordError::Hash)?,
                salt: Some(Salt::new(&salt).map_err(|_| PasswordError::Hash)?),
                hash: Some(Output::new(&out).map_err(|_| PasswordError::Hash)?),
            };
            Ok(phc.to_string())
        })
        .await?
}

/// True when `password` matches the PHC string `hash` (compared in constant time).
fn matches(blocks: &mut Vec<Block>, password: &[u8], hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else { return false };
    if Algorithm::try_from(parsed.algorithm.as_str()) != Ok(Algorithm::Argon2id) || params.m_cost() > MAX_M_COST_KIB {
        return false;
    }
    let mut out = vec![0u8; expected.len()];
    if raw_hash(blocks, &params, password, salt.as_ref(), &mut out).is_err() {
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(&out).is_ok_and(|computed| &computed == expected)
}

/// A hash of a random password, so that checking an unknown account costs the same as a real one.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = argon2::password_hash::generate_salt();
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&PARAMS).unwrap_or_default(),
            salt: Salt::new(&salt).ok(),
            // Any output: no password produces it, so the decoy never verifies, and checking it costs a full hash.
            hash: Output::new(&uuid::Uuid::new_v4().into_bytes().repeat(2)).ok(),
        };
        phc.to_string()
    })
}

/// True when `password` matches `hash`. With no hash (unknown account), a decoy hash is checked so the answer
/// takes the same time. Runs on a hashing thread; [`PasswordError::Busy`] when too many are waiting.
pub async fn verify_password(password: String, hash: Option<String>) -> Result<bool, PasswordError> {
    pool()
        .run(move |blocks| {
            let known = hash.is_some();
            let hash = hash.unwrap_or_else(|| decoy_hash().to_owned());
            matches(blocks, password.as_bytes(), &hash) && known
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert_eq!(check_policy("short1"), Err(PasswordError::Length));
        assert_eq!(check_policy(&format!("a1{}", "x".repeat(127))), Err(PasswordError::Length));
        assert_eq!(check_policy("onlyletters"), Err(PasswordError::Composition));
        assert_eq!(check_policy("1234567890"), Err(PasswordError::Composition));
        assert_eq!(check_policy("password1"), Err(PasswordError::Common));
        assert_eq!(check_policy("PASSWORD1"), Err(PasswordError::Common), "case-insensitive");
        assert_eq!(check_policy("correct horse 42 battery"), Ok(()));
        assert_eq!(common_passwords().len(), 10_000 - duplicates_after_lowercasing());
    }

    fn duplicates_after_lowercasing() -> usize {
        COMMON.lines().count() - COMMON.lines().map(str::to_lowercase).collect::<HashSet<_>>().len()
    }

    #[tokio::test]
    async fn hashes_are_argon2id_at_owasp_parameters_and_verify() {
        let hash = hash_password("correct horse 42".to_owned()).await.unwrap_or_default();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert_eq!(verify_password("correct horse 42".to_owned(), Some(hash.clone())).await, Ok(true));
        assert_eq!(verify_password("wrong horse 42".to_owned(), Some(hash.clone())).await, Ok(false));
        let unknown = verify_password("correct horse 42".to_owned(), None).await;
        assert_eq!(unknown, Ok(false), "an unknown account never verifies");
        let again = hash_password("correct horse 42".to_owned()).await.unwrap_or_default();
        assert_ne!(hash, again, "salted");
    }

    #[test]
    fn hashes_made_by_the_argon2_crate_itself_verify() {
        use argon2::password_hash::PasswordHasher as _;
        let reference = Argon2::default().hash_password(b"correct horse 42").map(|h| h.to_string()).unwrap_or_default();
        let mut blocks = Vec::new();
        assert!(matches(&mut blocks, b"correct horse 42", &reference));
        assert!(!matches(&mut blocks, b"correct horse 43", &reference));
        assert!(!matches(
            &mut blocks,
            b"correct horse 42",
            "$argon2id$v=19$m=1048576,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
        ));
        assert!(!matches(&mut blocks, b"x", "not a hash"));
    }

    #[tokio::test]
    async fn a_burst_beyond_the_queue_is_refused_as_busy_not_queued_without_bound() {
        // A pool of its own (one thread, two waiting), so the other tests' hashes are not refused meanwhile.
        let pool = Arc::new(HashPool::start(1, 2));
        let burst: Vec<_> = (0..12)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    pool.run(move |blocks| matches(blocks, format!("pw{i}").as_bytes(), decoy_hash())).await
                })
            })
            .collect();
        let (mut busy, mut checked) = (0, 0);
        for task in burst {
            match task.await {
                Ok(Ok(false)) => checked += 1,
                Ok(Err(PasswordError::Busy)) => busy += 1,
                other => panic!("{other:?}"),
            }
        }
        assert!(busy > 0, "some of 12 concurrent checks must be refused");
        assert!(checked >= 2, "at least the queue's worth is checked: {checked}");
        assert_eq!(busy + checked, 12);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_below_the_request_threads() {
        use rustix::process::getpriority_process;
        let niceness = |thread| getpriority_process(thread).unwrap_or_else(|e| panic!("niceness: {e}"));
        let ours = niceness(None);
        let pool = HashPool::start(1, 1);
        let theirs = pool.run(move |_| niceness(Some(rustix::thread::gettid()))).await;
        assert_eq!(theirs, Ok((ours + HASHING_NICENESS).min(19)));
        assert_eq!(niceness(Some(rustix::thread::gettid())), ours);
    }

    #[tokio::test]
    async fn a_full_queue_is_seen_before_a_job_is_handed_over() {
        let pool = Arc::new(HashPool::start(1, 1));
        let (release, held) = mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.run(move |_| {
                    let _ = started.send(());
                    let _ = held.recv();
                })
                .await
            }
        });
        running.await.unwrap_or_else(|e| panic!("the first job never started: {e}"));
        assert!(!pool.saturated(), "the thread is busy, the queue still has room");
        let queued = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(|_| ()).await }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !pool.saturated() {
            assert!(std::time::Instant::now() < deadline, "the queued job was never counted");
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.run(|_| ()).await, Err(PasswordError::Busy));
        let _ = release.send(());
        assert_eq!(busy.await.ok(), Some(Ok(())));
        assert_eq!(queued.await.ok(), Some(Ok(())));
        assert!(!pool.saturated());
    }
}
