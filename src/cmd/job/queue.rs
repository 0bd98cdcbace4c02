//! `job queue [NAME] [--slots N | --pause | --resume]`: list this host's
//! queues (width, running, queued, paused), show one, or change one; a
//! change starts at once what it lets start.

use crate::cli;
use crate::cmd::out::{clean, Out};
use crate::exit::{Exit, Res};
use crate::queue;
use crate::store::Store;

pub(super) fn queue(store: &Store, a: cli::JobQueue) -> Res<Exit> {
    let mut out = Out::new();
    if let Some(name) = &a.name {
        let paused = match (a.pause, a.resume) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        };
        if a.slots.is_some() || paused.is_some() {
            queue::configure(store, name, a.slots, paused)?;
        }
    }
    let all = queue::summaries(store, a.name.as_deref());
    if a.json {
        #[derive(serde::Serialize)]
        struct Slot<'a> {
            slot: u32,
            id: &'a str,
        }
        #[derive(serde::Serialize)]
        struct QueueView<'a> {
            name: &'a str,
            slots: u32,
            paused: bool,
            running: Vec<Slot<'a>>,
            queued: &'a [String],
        }
        let v: Vec<QueueView> = all
            .iter()
            .map(|q| QueueView {
                name: &q.name,
                slots: q.conf.slots,
                paused: q.conf.paused,
                running: q.running.iter().map(|(k, id)| Slot { slot: *k, id }).collect(),
                queued: &q.waiting,
            })
            .collect();
        out.json(&v)?;
        out.flush()?;
        return Ok(Exit::Ok);
    }
    if all.is_empty() {
        eprintln!("no queues on this host (run -q NAME CMD… makes one)");
    }
    for q in &all {
        let paused = if q.conf.paused { ", paused" } else { "" };
        out.line(&format!(
            "{}  {} slot{}, {} running, {} queued{paused}",
            clean(&q.name),
            q.conf.slots,
            if q.conf.slots == 1 { "" } else { "s" },
            q.running.len(),
            q.waiting.len()
        ))?;
        if a.name.is_some() {
            for (k, id) in &q.running {
                out.line(&format!("  slot {k}  {id}"))?;
            }
            for (i, id) in q.waiting.iter().enumerate() {
                out.line(&format!("  #{}  {id}", i + 1))?;
            }
        }
    }
    out.flush()?;
    Ok(Exit::Ok)
}
