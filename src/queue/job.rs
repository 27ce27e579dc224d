//! What travels through the queue.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::upstream::Message;

/// One accepted send request, shared by every chunk and retry made of it, so
/// that `pending` drops exactly once, when its last chunk is finished.
#[derive(Debug)]
pub struct Job {
    /// The request's key in the store.
    pub id: u64,
    /// Chunks of this request still unfinished (queued, in flight, or
    /// waiting for a retry).
    open_chunks: AtomicUsize,
}

impl Job {
    pub fn new(id: u64) -> Arc<Job> {
        Job::with_chunks(id, 1)
    }

    pub fn with_chunks(id: u64, chunks: usize) -> Arc<Job> {
        Arc::new(Job {
            id,
            open_chunks: AtomicUsize::new(chunks),
        })
    }

    /// One chunk became `extra + 1` chunks.
    pub fn split(&self, extra: usize) {
        self.open_chunks.fetch_add(extra, Ordering::AcqRel);
    }

    /// One chunk is finished; true when it was the last one, which
    /// finishes the request.
    pub fn chunk_done(&self) -> bool {
        self.open_chunks.fetch_sub(1, Ordering::AcqRel) == 1
    }
}

/// Tokens of one job on their way upstream: a whole request as accepted, a
/// chunk of it that fits one upstream call, or the tokens of a chunk that
/// are due for a retry.
#[derive(Debug)]
pub struct Delivery {
    pub job: Arc<Job>,
    pub message: Arc<Message>,
    pub tokens: Vec<String>,
    /// Each token's index in its request (its key in the store).
    pub ids: Vec<u32>,
    /// Upstream calls already made for these tokens.
    pub tries: u32,
}

impl Delivery {
    /// Splits off everything past the first `max` tokens, as chunks of at
    /// most `max` tokens each, and counts them on the job.
    pub fn split_off_chunks(&mut self, max: usize) -> Vec<Delivery> {
        if self.tokens.len() <= max {
            return Vec::new();
        }
        let rest = self.tokens.split_off(max);
        let rest_ids = self.ids.split_off(max);
        let chunks: Vec<Delivery> = rest
            .chunks(max)
            .zip(rest_ids.chunks(max))
            .map(|(tokens, ids)| Delivery {
                job: self.job.clone(),
                message: self.message.clone(),
                tokens: tokens.to_vec(),
                ids: ids.to_vec(),
                tries: self.tries,
            })
            .collect();
        self.job.split(chunks.len());
        chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting_2500_tokens_gives_three_chunks_and_one_finish() {
        let mut d = Delivery {
            job: Job::new(7),
            message: Arc::new(Message::default()),
            tokens: (0..2500).map(|i| i.to_string()).collect(),
            ids: (0..2500).collect(),
            tries: 0,
        };
        let rest = d.split_off_chunks(1000);
        let sizes: Vec<usize> = rest.iter().map(|c| c.tokens.len()).collect();
        assert_eq!((d.tokens.len(), sizes), (1000, vec![1000, 500]));
        assert_eq!((rest[1].ids[0], rest[1].tokens[0].as_str()), (2000, "2000"));
        assert!(!d.job.chunk_done());
        assert!(!rest[0].job.chunk_done());
        assert!(rest[1].job.chunk_done());
    }
}
