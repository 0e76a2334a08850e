//! A per-process cache of each user's subscriptions, so the hottest reads (`GET /v1/subscriptions/me`, the usage
//! routes' access check) do not ask PostgreSQL every time.
//!
//! It is only as good as its invalidation, which comes from the database itself: a trigger announces every
//! committed change to a user's subscriptions on [`CHANNEL`] (migration `subscription_change_notify`), whichever
//! process or statement made it, and a listener in this process forgets that user's entry. Three rules keep it
//! true:
//! - **Nothing is served while the listener is not listening.** Until `LISTEN` has succeeded, and from the moment
//!   the connection fails until a new one listens, every read goes to the database and the cache is emptied (a
//!   notification may have been missed). It goes live once a notification it sent through the pool came back,
//!   and must see another come back every [`HEARTBEAT`].
//! - **A read that raced a change is not stored.** Each fill carries a ticket taken before its query; a
//!   notification for that user (or a lost listener) after the ticket refuses the fill.
//! - **This process's own writes are never answered from the cache**: a user whose subscriptions this process
//!   changed within [`db::subscriptions::RECENT_WRITE`] is read from the database, so a client reading right after
//!   its own change (before the change's notification arrives) sees it.
//!
//! A change made by another process is seen here once its notification arrives, normally well under a
//! millisecond after the commit; an entry also expires after [`ENTRY_TTL`] whatever happens.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use billing_domain::UserId;
use billing_infra::DbPool;
use diesel_async::RunQueryDsl;
use futures_util::StreamExt;

use crate::db;
use crate::db::models::SubscriptionRow;

/// The channel the `subscriptions_changed` trigger notifies, with the user's id as the payload.
pub const CHANNEL: &str = "subscriptions_changed";
/// How long an entry is served at most.
pub const ENTRY_TTL: Duration = Duration::from_secs(30);
/// How often the listener proves the channel (a notification sent through the pool must come back by the next).
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// Entries kept at most; the cache is emptied when full.
const MAX_ENTRIES: usize = 100_000;
/// Users remembered as changed, at most, before older fills are refused wholesale.
const MAX_CHANGED: usize = 50_000;

/// The cache of one process; clones share it.
#[derive(Clone, Default)]
pub struct SubscriptionCache {
    inner: Arc<Mutex<Inner>>,
    started: Arc<AtomicBool>,
}

impl std::fmt::Debug for SubscriptionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionCache").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    /// True while the listener is listening.
    live: bool,
    /// Moves on whenever the listener is lost or regained: fills from before are refused.
    epoch: u64,
    /// Counts notifications.
    seq: u64,
    /// The last notification's `seq` per user.
    changed: HashMap<UserId, u64>,
    /// Fills with a ticket older than this are refused (`changed` was emptied to stay bounded).
    floor: u64,
    entries: HashMap<UserId, (Instant, Arc<Vec<SubscriptionRow>>)>,
}

/// Taken before the query whose answer is to be stored.
#[derive(Debug, Clone, Copy)]
struct Ticket {
    epoch: u64,
    seq: u64,
}

impl SubscriptionCache {
    /// `user`'s subscriptions, newest first: from the cache when it may answer, else from the database (and
    /// stored). Starts the listener on first use, on the caller's runtime.
    pub async fn of_user(
        &self,
        pool: &DbPool,
        user: UserId,
    ) -> Result<Arc<Vec<SubscriptionRow>>, billing_infra::DbError> {
        self.start(pool);
        if let Some(rows) = self.get(user) {
            return Ok(rows);
        }
        let ticket = self.ticket();
        let mut conn = pool.get().await?;
        let rows = Arc::new(db::subscriptions::list_for_user(&mut conn, user).await?);
        drop(conn);
        self.fill(user, ticket, rows.clone());
        Ok(rows)
    }

    /// The stored entry, if the cache may answer for `user` now.
    fn get(&self, user: UserId) -> Option<Arc<Vec<SubscriptionRow>>> {
        if db::subscriptions::written_recently(user) {
            return None;
        }
        let inner = self.inner.lock().ok()?;
        if !inner.live {
            return None;
        }
        inner.entries.get(&user).filter(|(at, _)| at.elapsed() < ENTRY_TTL).map(|(_, rows)| rows.clone())
    }

    fn ticket(&self) -> Ticket {
        self.inner
            .lock()
            .map_or(Ticket { epoch: u64::MAX, seq: 0 }, |inner| Ticket { epoch: inner.epoch, seq: inner.seq })
    }

    /// Stores `rows` read after `ticket` was taken, unless something may have changed them since; true if stored.
    fn fill(&self, user: UserId, ticket: Ticket, rows: Arc<Vec<SubscriptionRow>>) -> bool {
        if db::subscriptions::written_recently(user) {
            return false;
        }
        let Ok(mut inner) = self.inner.lock() else { return false };
        let changed_since = inner.changed.get(&user).is_some_and(|seq| *seq > ticket.seq);
        if !inner.live || inner.epoch != ticket.epoch || ticket.seq < inner.floor || changed_since {
            return false;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.clear();
        }
        inner.entries.insert(user, (Instant::now(), rows));
        true
    }

    /// A notification: `user`'s subscriptions changed.
    fn changed(&self, user: UserId) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.seq += 1;
            let seq = inner.seq;
            if inner.changed.len() >= MAX_CHANGED {
                inner.changed.clear();
                inner.floor = seq;
            }
            inner.changed.insert(user, seq);
            inner.entries.remove(&user);
        }
    }

    /// The listener starts or stops listening: everything stored is forgotten either way.
    fn set_live(&self, live: bool) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.live = live;
            inner.epoch += 1;
            inner.entries.clear();
            inner.changed.clear();
            inner.floor = inner.seq;
        }
    }

    /// Spawns the listener once.
    fn start(&self, pool: &DbPool) {
        // Read first: every request passes here, and only the first needs the write.
        if AtomicBool::load(&self.started, Ordering::Acquire) || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let (cache, pool) = (self.clone(), pool.clone());
        tokio::spawn(async move { cache.listen(pool).await });
    }

    /// Listens for as long as the runtime runs, reconnecting after a failure (the cache serves nothing meanwhile).
    async fn listen(self, pool: DbPool) {
        // Should the task be dropped (its runtime stopped), the cache goes dark and the next read starts another.
        let _stopped = Stopped(self.clone());
        let mut backoff = Duration::from_millis(100);
        loop {
            let Err(error) = self.listen_once(&pool).await;
            tracing::warn!(%error, "subscription cache: listener lost; reading from the database");
            // A listener that had gone live reconnects at once; one that keeps failing, ever more slowly.
            if self.inner.lock().is_ok_and(|inner| inner.live) {
                backoff = Duration::from_millis(100);
            }
            self.set_live(false);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// One listening connection, until it fails. The cache goes live only once a notification sent through the
    /// pool has come back on it, and every [`HEARTBEAT`] another must: the channel is proven end to end (a
    /// connection that still answers but no longer delivers, or a pooler that does not keep `LISTEN`, fails it).
    async fn listen_once(&self, pool: &DbPool) -> Result<std::convert::Infallible, String> {
        // A connection of its own, taken out of the pool for good.
        let mut conn = billing_infra::DbConn::take(pool.get().await.map_err(|e| e.to_string())?);
        diesel::sql_query(format!("LISTEN {CHANNEL}")).execute(&mut conn).await.map_err(|e| e.to_string())?;
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let (mut sent, mut awaiting, mut live) = (0_u64, None::<String>, false);
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = {
                let mut notifications = std::pin::pin!(conn.notifications_stream());
                tokio::select! {
                    next = notifications.next() => Some(next),
                    _ = heartbeat.tick() => None,
                }
            };
            match next {
                Some(Some(Ok(notification))) => {
                    if notification.payload.starts_with("probe:") {
                        // Ours or another process's: only ours proves anything, and none names a user.
                        if awaiting.as_deref() == Some(notification.payload.as_str()) {
                            awaiting = None;
                            if !live {
                                live = true;
                                self.set_live(true);
                                tracing::debug!("subscription cache: listening");
                            }
                        }
                    } else if let Ok(user) = notification.payload.parse::<uuid::Uuid>() {
                        self.changed(user.into());
                    } else {
                        tracing::warn!(payload = %notification.payload, "subscription cache: unreadable notification");
                    }
                }
                Some(Some(Err(error))) => return Err(error.to_string()),
                Some(None) => return Err("the listening connection closed".to_owned()),
                None => {
                    if awaiting.is_some() {
                        return Err(format!("a probe notification did not come back within {HEARTBEAT:?}"));
                    }
                    sent += 1;
                    let probe = format!("probe:{nonce}:{sent}");
                    let send = async {
                        let mut sender = pool.get().await.map_err(|e| e.to_string())?;
                        diesel::sql_query("SELECT pg_notify($1, $2)")
                            .bind::<diesel::sql_types::Text, _>(CHANNEL)
                            .bind::<diesel::sql_types::Text, _>(&probe)
                            .execute(&mut sender)
                            .await
                            .map_err(|e| e.to_string())
                    };
                    match tokio::time::timeout(HEARTBEAT, send).await {
                        Ok(Ok(_)) => awaiting = Some(probe),
                        Ok(Err(error)) => return Err(error),
                        Err(_) => return Err("a probe notification could not be sent".to_owned()),
                    }
                }
            }
        }
    }
}

/// Darkens the cache when the listener's task ends, however it ends.
struct Stopped(SubscriptionCache);

impl Drop for Stopped {
    fn drop(&mut self) {
        self.0.set_live(false);
        self.0.started.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Arc<Vec<SubscriptionRow>> {
        Arc::new(Vec::new())
    }

    fn live() -> SubscriptionCache {
        let cache = SubscriptionCache::default();
        cache.set_live(true);
        cache
    }

    #[test]
    fn nothing_is_served_or_stored_while_not_listening() {
        let cache = SubscriptionCache::default();
        let user = UserId::new();
        assert!(!cache.fill(user, cache.ticket(), rows()));
        let cache = live();
        assert!(cache.fill(user, cache.ticket(), rows()));
        assert!(cache.get(user).is_some());
        cache.set_live(false);
        assert!(cache.get(user).is_none(), "a lost listener empties the cache");
        cache.set_live(true);
        assert!(cache.get(user).is_none(), "and what was stored before is not served again");
    }

    #[test]
    fn a_notification_forgets_the_user_and_refuses_a_fill_that_raced_it() {
        let cache = live();
        let (user, other) = (UserId::new(), UserId::new());
        assert!(cache.fill(user, cache.ticket(), rows()));
        let ticket = cache.ticket();
        cache.changed(user);
        assert!(cache.get(user).is_none());
        assert!(!cache.fill(user, ticket, rows()), "read before the change: not stored");
        assert!(cache.fill(other, ticket, rows()), "another user's change does not matter");
        assert!(cache.fill(user, cache.ticket(), rows()), "read after the change: stored");
    }

    #[test]
    fn a_listener_that_stops_darkens_the_cache_and_lets_the_next_read_start_another() {
        let cache = live();
        let user = UserId::new();
        assert!(cache.fill(user, cache.ticket(), rows()));
        cache.started.store(true, Ordering::Release);
        drop(Stopped(cache.clone()));
        assert!(cache.get(user).is_none());
        assert!(!AtomicBool::load(&cache.started, Ordering::Acquire));
    }

    #[test]
    fn a_fill_from_before_the_listener_was_lost_is_refused() {
        let cache = live();
        let user = UserId::new();
        let ticket = cache.ticket();
        cache.set_live(false);
        cache.set_live(true);
        assert!(!cache.fill(user, ticket, rows()));
    }
}
