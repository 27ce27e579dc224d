//! The durable queue: every accepted request lives in an embedded redb
//! database until each of its tokens is delivered or finally failed.
//!
//! One writer thread owns all writes. It takes every operation waiting,
//! applies them in one transaction and commits once (one fsync), then
//! releases the callers that wait for durability: `/gcm/send` answers `ok`
//! only after its request is committed, and many requests share one fsync.
//! Worker updates (token done, retry due at T) do not wait: if the process
//! dies before they commit, those tokens are simply sent again on restart,
//! which only affects calls that were in flight at the crash.
//!
//! Layout: `requests` (request id → (message JSON, tokens)), `token_state`
//! ((request id, token index) → (tries, due time in ms since the epoch), or
//! done), and the two report lists (sequence number → entry) until a client
//! drains them. A token without a state row is waiting for its first try.
//! An accept is one row in one table, and a request delivered at the first
//! try never gets a state row: a commit costs about the same whatever it
//! holds, but each table it touches adds pages to write. A store of the
//! first layout (`messages` and `tokens`) is moved into these tables on the
//! first start, in one transaction (see [`upgrade`]).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender, TryRecvError};
use parking_lot::Mutex;
use redb::{
    Database, DatabaseError, ReadableDatabase, ReadableTable, TableDefinition, TableHandle,
    WriteTransaction,
};

use super::ack::{self, Ack};
use crate::error::Error;
use crate::stats::Canonical;
use crate::upstream::Message;

const REQUESTS: TableDefinition<u64, (&[u8], Vec<&str>)> = TableDefinition::new("requests");
const TOKEN_STATE: TableDefinition<(u64, u32), (u32, u64)> = TableDefinition::new("token_state");
const CANONICAL: TableDefinition<u64, (&str, &str)> = TableDefinition::new("canonical");
const NOTREGISTERED: TableDefinition<u64, &str> = TableDefinition::new("notregistered");

/// The first layout (gocm before the `requests` table): a message row, and
/// one row per token still to send, (token, tries, due ms), deleted once
/// the token was done. Read once, on the first start of a newer gocm, by
/// [`upgrade`], then dropped.
const OLD_MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
const OLD_TOKENS: TableDefinition<(u64, u32), (&str, u32, u64)> = TableDefinition::new("tokens");

/// Most operations folded into one transaction.
const MAX_BATCH: usize = 8192;

/// Longest a commit waits for sends that a handler has started reading
/// (see [`Arrival`]). A commit costs about the same for 1 request as for 30
/// (a few hundred microseconds, mostly page writes and one fsync), so
/// waiting a little for requests already on their way makes batches larger
/// and commits fewer: group commit's "siblings" wait, as in PostgreSQL's
/// commit_delay. It adds at most this much to an `ok`.
const LINGER: Duration = Duration::from_micros(300);

/// Longest a batch of worker progress alone (tokens done, retries due,
/// requests finished) waits for more before it is committed. Progress is
/// never fsynced on its own anyway, so holding it a few milliseconds costs
/// nothing in safety that a crash between two commits did not already
/// cost (those tokens are sent again), and it lets the tokens of a
/// multi-token request, whose calls go out together and end together, be
/// folded into their request's end (see [`apply`]): with FCM HTTP v1 a
/// 10-token send is 10 calls, and without this each of them wrote a row
/// that the next commit deleted. It also means far fewer commits.
const PROGRESS_LINGER: Duration = Duration::from_millis(10);

/// `tries` in a `token_state` row whose token is finished.
const DONE: u32 = u32::MAX;

/// The file inside `--data-dir`.
pub const FILE_NAME: &str = "queue.redb";

enum Op {
    Accept {
        request: u64,
        message: Vec<u8>,
        tokens: Vec<String>,
        ack: Ack,
    },
    TokensDone {
        request: u64,
        ids: Vec<u32>,
    },
    TokensRetry {
        request: u64,
        ids: Vec<u32>,
        tries: u32,
        due_ms: u64,
    },
    RequestDone {
        request: u64,
    },
    AddCanonical {
        seq: u64,
        entry: Canonical,
    },
    AddNotRegistered {
        seq: u64,
        token: String,
    },
    Drained {
        canonical: Vec<u64>,
        notregistered: Vec<u64>,
        ack: Ack,
    },
    /// Commit what came before, then stop; later operations are dropped.
    Close,
}

impl Op {
    /// A caller blocks until this is committed.
    fn awaited(&self) -> bool {
        matches!(self, Op::Accept { .. } | Op::Drained { .. } | Op::Close)
    }
}

/// What a previous run left unfinished.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Oldest first.
    pub requests: Vec<RecoveredRequest>,
    pub canonical: Vec<(u64, Canonical)>,
    pub notregistered: Vec<(u64, String)>,
    /// The first free request id and list sequence number.
    pub next_id: u64,
}

#[derive(Debug)]
pub struct RecoveredRequest {
    pub id: u64,
    pub message: Message,
    /// Tokens still to send, grouped by retry state.
    pub groups: Vec<TokenGroup>,
}

/// Tokens of one request that share a retry state.
#[derive(Debug)]
pub struct TokenGroup {
    /// Upstream calls already made for them.
    pub tries: u32,
    /// Earliest next call.
    pub due: SystemTime,
    /// (index in the request, token)
    pub tokens: Vec<(u32, String)>,
}

/// Recovered `token_state` rows: request → token index → (tries, due ms).
type States = BTreeMap<u64, BTreeMap<u32, (u32, u64)>>;

/// The handle every thread shares.
#[derive(Clone)]
pub struct Store {
    tx: Sender<Op>,
    health: Arc<Mutex<Health>>,
    /// Sends being read and parsed, not yet handed to the writer.
    arriving: Arc<AtomicUsize>,
}

/// A send on its way to [`Store::accept`]: while any exists, the writer
/// holds a commit that has accepts in it for up to [`LINGER`], so that
/// this one joins it rather than paying for a commit of its own.
pub struct Arrival(Arc<AtomicUsize>);

impl Drop for Arrival {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What `/readyz` needs to know of the writer.
#[derive(Default)]
struct Health {
    /// The writer thread ended (closed, or panicked).
    closed: bool,
    /// The last commit failed with this; cleared by the next good commit.
    last_error: Option<String>,
}

/// Marks the store closed when the writer thread ends, however it ends.
struct ClosedOnDrop(Arc<Mutex<Health>>);

impl Drop for ClosedOnDrop {
    fn drop(&mut self) {
        self.0.lock().closed = true;
    }
}

pub struct Writer {
    thread: JoinHandle<()>,
}

impl Writer {
    /// Commits every operation sent so far, then stops the writer.
    pub fn close(self, store: &Store) {
        let _ = store.tx.send(Op::Close);
        let _ = self.thread.join();
    }
}

impl Store {
    /// Opens (or creates) the store under `dir` and reads what it holds.
    /// Fails, without touching the file, when another process has it open
    /// or it is not a readable redb database.
    pub fn open(dir: &Path) -> Result<(Store, Writer, Recovered), Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            what: format!("creating --data-dir {}", dir.display()),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let db = Database::builder()
            .set_check_integrity_on_open(true)
            .create(&path)
            .map_err(|e| open_error(&path, e))?;
        let (recovered, stated) = recover(&db).map_err(|e| {
            Error::Store(format!(
                "{}: cannot read the queue ({e}); it is left as it is: move it away to start empty",
                path.display()
            ))
        })?;
        let (tx, rx) = unbounded();
        let health = Arc::new(Mutex::new(Health::default()));
        let writer_health = health.clone();
        let arriving = Arc::new(AtomicUsize::new(0));
        let writer_arriving = arriving.clone();
        let thread = std::thread::Builder::new()
            .name("gocm-store".into())
            .spawn(move || {
                let _closed = ClosedOnDrop(writer_health.clone());
                write_loop(db, rx, &writer_health, stated, &writer_arriving)
            })
            .map_err(|source| Error::Io {
                what: "starting the store writer".into(),
                source,
            })?;
        let store = Store {
            tx,
            health,
            arriving,
        };
        Ok((store, Writer { thread }, recovered))
    }

    /// Whether the store takes writes: `Err` says why not (closed, or the
    /// last commit failed, e.g. a full disk).
    pub fn health(&self) -> Result<(), String> {
        let h = self.health.lock();
        if h.closed {
            return Err("the queue store is closed".into());
        }
        match &h.last_error {
            Some(e) => Err(format!("the last queue store commit failed: {e}")),
            None => Ok(()),
        }
    }

    /// Announces a send that will soon call [`Store::accept`]; take it as
    /// soon as a send request comes in, before reading its body.
    pub fn arrival(&self) -> Arrival {
        self.arriving.fetch_add(1, Ordering::AcqRel);
        Arrival(self.arriving.clone())
    }

    /// Durably records an accepted request; returns once committed.
    pub fn accept(
        &self,
        arrival: Arrival,
        request: u64,
        message: &Message,
        tokens: &[String],
    ) -> Result<(), String> {
        let (ack, done) = ack::pair();
        let message = serde_json::to_vec(message).map_err(|e| e.to_string())?;
        let sent = self.tx.send(Op::Accept {
            request,
            message,
            tokens: tokens.to_vec(),
            ack,
        });
        // Handed over (or refused): the writer need not wait for it.
        drop(arrival);
        sent.map_err(|_| "the store is closed".to_string())?;
        done.wait()
    }

    pub fn tokens_done(&self, request: u64, ids: Vec<u32>) {
        if !ids.is_empty() {
            let _ = self.tx.send(Op::TokensDone { request, ids });
        }
    }

    pub fn tokens_retry(&self, request: u64, ids: Vec<u32>, tries: u32, due: SystemTime) {
        let _ = self.tx.send(Op::TokensRetry {
            request,
            ids,
            tries,
            due_ms: to_ms(due),
        });
    }

    pub fn request_done(&self, request: u64) {
        let _ = self.tx.send(Op::RequestDone { request });
    }

    pub fn add_canonical(&self, seq: u64, entry: Canonical) {
        let _ = self.tx.send(Op::AddCanonical { seq, entry });
    }

    pub fn add_not_registered(&self, seq: u64, token: String) {
        let _ = self.tx.send(Op::AddNotRegistered { seq, token });
    }

    /// Removes drained list entries; returns once committed.
    pub fn drained(&self, canonical: Vec<u64>, notregistered: Vec<u64>) -> Result<(), String> {
        if canonical.is_empty() && notregistered.is_empty() {
            return Ok(());
        }
        let (ack, done) = ack::pair();
        self.tx
            .send(Op::Drained {
                canonical,
                notregistered,
                ack,
            })
            .map_err(|_| "the store is closed".to_string())?;
        done.wait()
    }
}

fn open_error(path: &Path, e: DatabaseError) -> Error {
    match e {
        DatabaseError::DatabaseAlreadyOpen => Error::Store(format!(
            "{} is in use by another gocm process (or one still shutting down); give each \
             instance its own --data-dir",
            path.display()
        )),
        other => Error::Store(format!(
            "{}: cannot open the queue ({other}); it is left as it is: restore a backup, \
             or move it away to start empty",
            path.display()
        )),
    }
}

fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Reads what the store holds, and which requests have `token_state` rows.
fn recover(db: &Database) -> Result<(Recovered, HashSet<u64>), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    // Create the tables on first start, so that reads below find them.
    let w = db.begin_write().map_err(|x| e(&x))?;
    w.open_table(REQUESTS).map_err(|x| e(&x))?;
    w.open_table(TOKEN_STATE).map_err(|x| e(&x))?;
    w.open_table(CANONICAL).map_err(|x| e(&x))?;
    w.open_table(NOTREGISTERED).map_err(|x| e(&x))?;
    let upgraded = upgrade(&w)?;
    w.commit().map_err(|x| e(&x))?;
    if upgraded > 0 {
        log::info!("queue store: {upgraded} unfinished requests moved from the older file layout");
    }

    let r = db.begin_read().map_err(|x| e(&x))?;
    let mut out = Recovered::default();
    let mut next = 1u64;
    let mut states: States = BTreeMap::new();
    for row in r
        .open_table(TOKEN_STATE)
        .map_err(|x| e(&x))?
        .iter()
        .map_err(|x| e(&x))?
    {
        let (k, v) = row.map_err(|x| e(&x))?;
        let (request, idx) = k.value();
        states.entry(request).or_default().insert(idx, v.value());
    }
    let stated: HashSet<u64> = states.keys().copied().collect();
    let requests = r.open_table(REQUESTS).map_err(|x| e(&x))?;
    for row in requests.iter().map_err(|x| e(&x))? {
        let (k, v) = row.map_err(|x| e(&x))?;
        let id = k.value();
        next = next.max(id + 1);
        let (message, tokens) = v.value();
        let message: Message = serde_json::from_slice(message)
            .map_err(|x| format!("request {id}: unreadable message: {x}"))?;
        let state = states.remove(&id).unwrap_or_default();
        // (tries, due ms) → tokens, so that tokens sharing a retry state
        // travel together again.
        let mut groups: BTreeMap<(u32, u64), Vec<(u32, String)>> = BTreeMap::new();
        for (idx, token) in (0u32..).zip(tokens) {
            let (tries, due) = state.get(&idx).copied().unwrap_or((0, 0));
            if tries != DONE {
                groups
                    .entry((tries, due))
                    .or_default()
                    .push((idx, token.to_string()));
            }
        }
        out.requests.push(RecoveredRequest {
            id,
            message,
            groups: groups
                .into_iter()
                .map(|((tries, due), tokens)| TokenGroup {
                    tries,
                    due: from_ms(due),
                    tokens,
                })
                .collect(),
        });
    }
    for row in r
        .open_table(CANONICAL)
        .map_err(|x| e(&x))?
        .iter()
        .map_err(|x| e(&x))?
    {
        let (k, v) = row.map_err(|x| e(&x))?;
        let (original, canonical) = v.value();
        next = next.max(k.value() + 1);
        out.canonical.push((
            k.value(),
            Canonical {
                original: original.to_string(),
                canonical: canonical.to_string(),
            },
        ));
    }
    for row in r
        .open_table(NOTREGISTERED)
        .map_err(|x| e(&x))?
        .iter()
        .map_err(|x| e(&x))?
    {
        let (k, v) = row.map_err(|x| e(&x))?;
        next = next.max(k.value() + 1);
        out.notregistered.push((k.value(), v.value().to_string()));
    }
    out.next_id = next;
    Ok((out, stated))
}

/// Moves what a store of the first layout holds into the current tables,
/// in the caller's transaction, so that an upgrade loses no accepted
/// request: each unfinished message becomes a `requests` row holding the
/// tokens it still had to send (the done ones are gone from the old table),
/// with their retry state. A message without tokens left was finished.
/// Returns how many requests were moved.
fn upgrade(w: &WriteTransaction) -> Result<usize, String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let names: Vec<String> = w
        .list_tables()
        .map_err(|x| e(&x))?
        .map(|t| t.name().to_string())
        .collect();
    let has = |name: &str| names.iter().any(|n| n == name);
    if !has(OLD_MESSAGES.name()) && !has(OLD_TOKENS.name()) {
        return Ok(0);
    }
    // request → (token, tries, due ms), in token order.
    let mut left: BTreeMap<u64, Vec<(String, u32, u64)>> = BTreeMap::new();
    if has(OLD_TOKENS.name()) {
        let old = w.open_table(OLD_TOKENS).map_err(|x| e(&x))?;
        for row in old.iter().map_err(|x| e(&x))? {
            let (k, v) = row.map_err(|x| e(&x))?;
            let (token, tries, due) = v.value();
            left.entry(k.value().0)
                .or_default()
                .push((token.to_string(), tries, due));
        }
    }
    let mut moved = 0;
    if has(OLD_MESSAGES.name()) {
        let old = w.open_table(OLD_MESSAGES).map_err(|x| e(&x))?;
        let mut requests = w.open_table(REQUESTS).map_err(|x| e(&x))?;
        let mut states = w.open_table(TOKEN_STATE).map_err(|x| e(&x))?;
        for row in old.iter().map_err(|x| e(&x))? {
            let (k, v) = row.map_err(|x| e(&x))?;
            let id = k.value();
            let Some(tokens) = left.remove(&id) else {
                continue;
            };
            let list: Vec<&str> = tokens.iter().map(|(t, _, _)| t.as_str()).collect();
            requests.insert(id, (v.value(), list)).map_err(|x| e(&x))?;
            for (idx, (_, tries, due)) in (0u32..).zip(&tokens) {
                if (*tries, *due) != (0, 0) {
                    states
                        .insert((id, idx), (*tries, *due))
                        .map_err(|x| e(&x))?;
                }
            }
            moved += 1;
        }
    }
    w.delete_table(OLD_MESSAGES).map_err(|x| e(&x))?;
    w.delete_table(OLD_TOKENS).map_err(|x| e(&x))?;
    Ok(moved)
}

fn write_loop(
    db: Database,
    rx: Receiver<Op>,
    health: &Mutex<Health>,
    stated: HashSet<u64>,
    arriving: &AtomicUsize,
) {
    // Requests that have `token_state` rows: only their end needs a sweep
    // of that table.
    let mut stated = stated;
    let mut closing = false;
    while !closing {
        let Some(mut batch) = gather(&rx, arriving) else {
            break;
        };
        if let Some(at) = batch.iter().position(|op| matches!(op, Op::Close)) {
            batch.truncate(at);
            closing = true;
        }
        let mut acks = Vec::new();
        let result = apply(&db, batch, &mut acks, &mut stated).map_err(|e| {
            log::error!("queue store write failed: {e}");
            e
        });
        health.lock().last_error = result.as_ref().err().cloned();
        for ack in acks {
            ack.send(result.clone());
        }
    }
    // Make the last non-durable commits (worker progress) durable.
    let last = db
        .begin_write()
        .map_err(|e| e.to_string())
        .and_then(|w| w.commit().map_err(|e| e.to_string()));
    if let Err(e) = last {
        log::error!("queue store: final commit failed: {e}");
    }
}

/// The next batch: what is waiting and, when the writer was idle and the
/// batch holds accepts, the sends already on their way, for at most
/// [`LINGER`]. Under load (operations were waiting when the last commit
/// ended) the batch is what waited: a fixed pause between commits was
/// measured and only lowered the intake (the closed-loop clients wait on
/// every commit). A batch of worker progress alone waits up to
/// [`PROGRESS_LINGER`] for more, and is cut short by anything a caller
/// waits for. `None` once every sender is gone.
fn gather(rx: &Receiver<Op>, arriving: &AtomicUsize) -> Option<Vec<Op>> {
    let (first, busy) = match rx.try_recv() {
        Ok(op) => (op, true),
        Err(TryRecvError::Empty) => (rx.recv().ok()?, false),
        Err(TryRecvError::Disconnected) => return None,
    };
    let mut batch = vec![first];
    take_waiting(rx, &mut batch);
    if !batch.iter().any(Op::awaited) {
        linger_for_progress(rx, &mut batch);
        return Some(batch);
    }
    if busy || !batch.iter().any(|op| matches!(op, Op::Accept { .. })) {
        return Some(batch);
    }
    let until = Instant::now() + LINGER;
    while batch.len() < MAX_BATCH
        && arriving.load(Ordering::Acquire) > 0
        && !batch.iter().any(|op| matches!(op, Op::Close))
    {
        match rx.recv_deadline(until) {
            Ok(op) => {
                batch.push(op);
                take_waiting(rx, &mut batch);
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    Some(batch)
}

/// Adds worker progress to a progress-only `batch` for up to
/// [`PROGRESS_LINGER`], until an operation that someone waits for (an
/// accept, a drain, the close) arrives: that one is committed at once.
fn linger_for_progress(rx: &Receiver<Op>, batch: &mut Vec<Op>) {
    let until = Instant::now() + PROGRESS_LINGER;
    while batch.len() < MAX_BATCH {
        match rx.recv_deadline(until) {
            Ok(op) => {
                let awaited = op.awaited();
                batch.push(op);
                if awaited {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Adds every operation already waiting, up to [`MAX_BATCH`].
fn take_waiting(rx: &Receiver<Op>, batch: &mut Vec<Op>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(op) => batch.push(op),
            Err(_) => break,
        }
    }
}

fn apply(
    db: &Database,
    batch: Vec<Op>,
    acks: &mut Vec<Ack>,
    stated: &mut HashSet<u64>,
) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let mut w = db.begin_write().map_err(|x| e(&x))?;
    // Only accepts and drains have a caller waiting for durability. A batch
    // of worker progress alone (tokens done, retries due) is committed
    // without an fsync: it becomes durable with the next durable commit, and
    // losing it in a crash only means those tokens are sent again.
    let someone_waits = batch.iter().any(Op::awaited);
    if !someone_waits {
        w.set_durability(redb::Durability::None)
            .map_err(|x| e(&x))?;
    }
    // Requests that end in this batch: their tokens' progress in it need
    // not be written, as the end removes every row of the request.
    let ending: HashSet<u64> = batch
        .iter()
        .filter_map(|op| match op {
            Op::RequestDone { request } => Some(*request),
            _ => None,
        })
        .collect();
    // No `set_quick_repair`: it made every commit about five times slower
    // here (an extra write of the allocator state), and the queue's file
    // stays small (bounded by --max-pending), so a full repair after a
    // crash is quick anyway.
    {
        let mut requests = w.open_table(REQUESTS).map_err(|x| e(&x))?;
        let mut states = w.open_table(TOKEN_STATE).map_err(|x| e(&x))?;
        let mut canonical = w.open_table(CANONICAL).map_err(|x| e(&x))?;
        let mut notregistered = w.open_table(NOTREGISTERED).map_err(|x| e(&x))?;
        for op in batch {
            match op {
                Op::Accept {
                    request,
                    message,
                    tokens,
                    ack,
                } => {
                    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
                    requests
                        .insert(request, (message.as_slice(), tokens))
                        .map_err(|x| e(&x))?;
                    acks.push(ack);
                }
                Op::TokensDone { request, .. } | Op::TokensRetry { request, .. }
                    if ending.contains(&request) => {}
                Op::TokensDone { request, ids } => {
                    stated.insert(request);
                    for i in ids {
                        states.insert((request, i), (DONE, 0)).map_err(|x| e(&x))?;
                    }
                }
                Op::TokensRetry {
                    request,
                    ids,
                    tries,
                    due_ms,
                } => {
                    stated.insert(request);
                    for i in ids {
                        states
                            .insert((request, i), (tries, due_ms))
                            .map_err(|x| e(&x))?;
                    }
                }
                Op::RequestDone { request } => {
                    requests.remove(request).map_err(|x| e(&x))?;
                    if stated.remove(&request) {
                        states
                            .retain_in((request, 0)..=(request, u32::MAX), |_, _| false)
                            .map_err(|x| e(&x))?;
                    }
                }
                Op::AddCanonical { seq, entry } => {
                    canonical
                        .insert(seq, (entry.original.as_str(), entry.canonical.as_str()))
                        .map_err(|x| e(&x))?;
                }
                Op::AddNotRegistered { seq, token } => {
                    notregistered
                        .insert(seq, token.as_str())
                        .map_err(|x| e(&x))?;
                }
                Op::Drained {
                    canonical: c,
                    notregistered: n,
                    ack,
                } => {
                    for seq in c {
                        canonical.remove(seq).map_err(|x| e(&x))?;
                    }
                    for seq in n {
                        notregistered.remove(seq).map_err(|x| e(&x))?;
                    }
                    acks.push(ack);
                }
                Op::Close => {}
            }
        }
    }
    w.commit().map_err(|x| e(&x))
}
