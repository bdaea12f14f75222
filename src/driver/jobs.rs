//! Node-wide jobs (the qemu CPU-model probe, the docker API negotiation):
//! done once, however many instances need the answer.
//!
//! The first instance that asks leads the job; the others wait. When the
//! leader finishes, every waiter gets [`Input::Job`] at once (no polling).
//! When the leader goes away before finishing (its instance was deleted),
//! the next waiter is told to lead, so nobody waits for a job that nobody
//! runs. The answer itself lives in the drivers' shared settings.

use std::collections::BTreeMap;

use super::effect::{Input, Routed};
use super::keys::{InstanceKey, Job};

/// What [`Jobs::join`] tells an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Run the job now and call [`Jobs::finish`] when it is over.
    Lead,
    /// Another instance runs it: wait for [`Input::Job`].
    Wait,
}

#[derive(Debug)]
struct Running {
    lead: InstanceKey,
    waiters: Vec<InstanceKey>,
}

/// The jobs in progress and the notices they produced.
#[derive(Debug, Default)]
pub struct Jobs {
    running: BTreeMap<Job, Running>,
    notices: Vec<Routed>,
}

impl Jobs {
    /// `who` needs `job` done.
    pub fn join(&mut self, job: Job, who: &InstanceKey) -> Turn {
        match self.running.get_mut(&job) {
            None => {
                self.running.insert(
                    job,
                    Running {
                        lead: who.clone(),
                        waiters: Vec::new(),
                    },
                );
                Turn::Lead
            }
            Some(r) if r.lead == *who => Turn::Lead,
            Some(r) => {
                if !r.waiters.contains(who) {
                    r.waiters.push(who.clone());
                }
                Turn::Wait
            }
        }
    }

    /// The leader `who` finished `job`: every waiter is told.
    pub fn finish(&mut self, job: Job, who: &InstanceKey) {
        if self.running.get(&job).is_some_and(|r| r.lead == *who) {
            if let Some(r) = self.running.remove(&job) {
                for w in r.waiters {
                    self.notices.push((w, Input::Job { job, lead: false }));
                }
            }
        }
    }

    /// `who` is gone: it waits for nothing, and a job it led passes to
    /// the next waiter.
    pub fn leave(&mut self, who: &InstanceKey) {
        let mut ended = Vec::new();
        for (job, r) in self.running.iter_mut() {
            r.waiters.retain(|w| w != who);
            if r.lead == *who {
                if r.waiters.is_empty() {
                    ended.push(*job);
                } else {
                    r.lead = r.waiters.remove(0);
                    self.notices.push((
                        r.lead.clone(),
                        Input::Job {
                            job: *job,
                            lead: true,
                        },
                    ));
                }
            }
        }
        for j in ended {
            self.running.remove(&j);
        }
    }

    /// Notices produced since the last call, for the instances they name.
    pub fn take_notices(&mut self) -> Vec<Routed> {
        std::mem::take(&mut self.notices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(id: &str) -> InstanceKey {
        InstanceKey {
            id: id.into(),
            generation: 1,
        }
    }

    #[test]
    fn one_leads_the_others_are_told_when_it_is_done() {
        let mut j = Jobs::default();
        assert_eq!(j.join(Job::CpuModel, &k("a")), Turn::Lead);
        assert_eq!(j.join(Job::CpuModel, &k("b")), Turn::Wait);
        assert_eq!(j.join(Job::CpuModel, &k("b")), Turn::Wait);
        assert_eq!(j.join(Job::CpuModel, &k("c")), Turn::Wait);
        assert!(j.take_notices().is_empty());
        j.finish(Job::CpuModel, &k("b")); // not the leader: ignored
        assert!(j.take_notices().is_empty());
        j.finish(Job::CpuModel, &k("a"));
        let told: Vec<_> = j.take_notices().into_iter().map(|(w, _)| w.id).collect();
        assert_eq!(told, ["b".into(), "c".into()] as [std::rc::Rc<str>; 2]);
        assert_eq!(j.join(Job::CpuModel, &k("d")), Turn::Lead, "a new run");
    }

    #[test]
    fn a_departed_leader_hands_the_job_to_the_next_waiter() {
        let mut j = Jobs::default();
        j.join(Job::DockerApi, &k("a"));
        j.join(Job::DockerApi, &k("b"));
        j.join(Job::DockerApi, &k("c"));
        j.leave(&k("a"));
        assert_eq!(
            j.take_notices(),
            [(
                k("b"),
                Input::Job {
                    job: Job::DockerApi,
                    lead: true
                }
            )]
        );
        j.leave(&k("c"));
        j.finish(Job::DockerApi, &k("b"));
        assert!(j.take_notices().is_empty(), "c left: nobody to tell");
        j.join(Job::DockerApi, &k("x"));
        j.leave(&k("x"));
        assert_eq!(j.join(Job::DockerApi, &k("y")), Turn::Lead);
    }
}
