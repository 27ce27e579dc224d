//! The canonical and notregistered reports drain atomically: under 100
//! concurrent senders and concurrent readers, the union of all reads holds
//! every entry exactly once.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use common::{client, legacy};
use serde_json::Value;

#[test]
fn concurrent_drains_lose_and_repeat_nothing() {
    let h = legacy(&["--workers", "16", "--http-threads", "8"]);
    let senders = 100;
    let per_sender = 5;
    let seen_canonical = Mutex::new(HashMap::<String, u32>::new());
    let seen_notreg = Mutex::new(HashMap::<String, u32>::new());
    let done = AtomicBool::new(false);

    let drain = |agent: &ureq::Agent,
                 seen_c: &Mutex<HashMap<String, u32>>,
                 seen_n: &Mutex<HashMap<String, u32>>| {
        let c: Value = agent
            .get(&h.url("/gcm/report/canonical"))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        for e in c["canonical_replacements"].as_array().unwrap() {
            let key = format!(
                "{}>{}",
                e["original"].as_str().unwrap(),
                e["canonical"].as_str().unwrap()
            );
            *seen_c.lock().unwrap().entry(key).or_default() += 1;
        }
        let n: Value = agent
            .get(&h.url("/gcm/report/notregistered"))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        for t in n["tokens"].as_array().unwrap() {
            *seen_n
                .lock()
                .unwrap()
                .entry(t.as_str().unwrap().to_string())
                .or_default() += 1;
        }
    };

    std::thread::scope(|s| {
        for _ in 0..10 {
            s.spawn(|| {
                let agent = client();
                while !done.load(Ordering::Acquire) {
                    drain(&agent, &seen_canonical, &seen_notreg);
                }
            });
        }
        let sender_threads: Vec<_> = (0..senders)
            .map(|i| {
                let h = &h;
                s.spawn(move || {
                    for j in 0..per_sender {
                        h.send(&[
                            &format!("canonical-{i}-{j}"),
                            &format!("notreg-{i}-{j}"),
                            &format!("plain-{i}-{j}"),
                        ]);
                    }
                })
            })
            .collect();
        for t in sender_threads {
            t.join().unwrap();
        }
        h.wait_idle();
        done.store(true, Ordering::Release);
    });
    // One last read after the readers stopped.
    drain(&client(), &seen_canonical, &seen_notreg);

    let canonical = seen_canonical.into_inner().unwrap();
    let notreg = seen_notreg.into_inner().unwrap();
    let total = senders * per_sender;
    assert_eq!(canonical.len(), total, "every canonical entry read");
    assert_eq!(notreg.len(), total, "every notregistered entry read");
    assert!(
        canonical.values().all(|&n| n == 1),
        "a canonical entry was read twice"
    );
    assert!(
        notreg.values().all(|&n| n == 1),
        "a notregistered entry was read twice"
    );
    for i in 0..senders {
        for j in 0..per_sender {
            assert_eq!(
                canonical.get(&format!("canonical-{i}-{j}>new-{i}-{j}")),
                Some(&1)
            );
            assert_eq!(notreg.get(&format!("notreg-{i}-{j}")), Some(&1));
        }
    }
    let r = h.report();
    assert_eq!(r["attempts"], 3 * total as u64);
    assert_eq!(r["canonicals"], total as u64);
    assert_eq!(r["notregistered"], total as u64);
    assert_eq!(r["failures"], total as u64);
    assert_eq!(r["pending"], 0);
}
