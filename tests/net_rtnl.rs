//! The rtnetlink client against the real kernel: links created, changed,
//! dumped (every field checked) and deleted; kernel errors carrying the
//! operation and the errno; a failed plan rolled back.
//!
//! Each test runs on a thread that first moves into a network namespace of
//! its own (`unshare(CLONE_NEWNET)` changes only the calling thread's), so
//! the host's links are never seen nor touched; the namespace disappears
//! with the thread. Root only: elsewhere the tests print SKIPPED (and fail
//! under CI=true).

// unshare(2) and geteuid(2).
#![allow(unsafe_code)]

use std::io;
use std::net::Ipv4Addr;

use ciao::net::link::{Link, LinkOp, NewLink, IFF_UP};
use ciao::net::rtnl::{Rtnl, RtnlError};
use ciao_test_support::skip_or_fail;

/// Runs `f` on a thread in a fresh network namespace, or says why not.
fn in_private_netns(test: &str, f: impl FnOnce() + Send + 'static) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip_or_fail(test, "not root (network namespaces need root)");
        return;
    }
    let t = std::thread::spawn(move || {
        // SAFETY: unshare(2) with CLONE_NEWNET changes the network
        // namespace of this thread only; it touches no memory of ours.
        let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "unshare: {}", io::Error::last_os_error());
        f()
    });
    if let Err(p) = t.join() {
        std::panic::resume_unwind(p)
    }
}

fn create(name: &str, kind: NewLink) -> LinkOp {
    LinkOp::Create {
        name: name.into(),
        kind,
    }
}

fn find<'a>(links: &'a [Link], name: &str) -> &'a Link {
    links
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no link {name} in {links:#?}"))
}

fn names(rtnl: &mut Rtnl) -> Vec<String> {
    let mut n: Vec<String> = rtnl.links().unwrap().into_iter().map(|l| l.name).collect();
    n.sort();
    n
}

#[test]
fn links_are_made_changed_dumped_and_deleted() {
    in_private_netns("links_are_made_changed_dumped_and_deleted", || {
        let mut r = Rtnl::open().unwrap();
        assert_eq!(names(&mut r), ["lo"], "a fresh namespace");
        let mac = [0x02, 0, 0, 0, 0x11, 0x22];
        r.run(&[
            LinkOp::Up { name: "lo".into() },
            create("sbr_t", NewLink::Bridge),
            LinkOp::SetAlias {
                name: "sbr_t".into(),
                alias: "br_tenant_subnet".into(),
            },
            create(
                "sve_a",
                NewLink::Veth {
                    peer: "sve_b".into(),
                },
            ),
            LinkOp::SetMaster {
                name: "sve_a".into(),
                master: "sbr_t".into(),
            },
            LinkOp::SetMac {
                name: "sve_a".into(),
                mac,
            },
            LinkOp::SetMtu {
                name: "sve_a".into(),
                mtu: 1400,
            },
            LinkOp::Up {
                name: "sve_a".into(),
            },
            LinkOp::Up {
                name: "sbr_t".into(),
            },
            create("svn_t", NewLink::Tap),
            LinkOp::SetAlias {
                name: "svn_t".into(),
                alias: "vnic_x##10.0.0.2".into(),
            },
            LinkOp::SetMaster {
                name: "svn_t".into(),
                master: "sbr_t".into(),
            },
        ])
        .unwrap();

        let links = r.links().unwrap();
        let br = find(&links, "sbr_t");
        assert_eq!(br.kind.as_deref(), Some("bridge"));
        assert_eq!(br.alias.as_deref(), Some("br_tenant_subnet"));
        assert_ne!(br.flags & IFF_UP, 0);
        assert_eq!((br.master, br.parent), (None, None));
        let a = find(&links, "sve_a");
        let b = find(&links, "sve_b");
        assert_eq!(a.kind.as_deref(), Some("veth"));
        assert_eq!(a.master, Some(br.index));
        assert_eq!(a.mac, Some(mac));
        assert_eq!(a.mtu, 1400);
        assert_ne!(a.flags & IFF_UP, 0);
        assert_eq!(a.alias, None);
        assert_eq!((a.parent, b.parent), (Some(b.index), Some(a.index)));
        assert_eq!(b.flags & IFF_UP, 0);
        let t = find(&links, "svn_t");
        assert_eq!(t.kind.as_deref(), Some("tun"));
        assert_eq!(t.alias.as_deref(), Some("vnic_x##10.0.0.2"));
        assert_eq!(t.master, Some(br.index));
        assert_eq!(t.mtu, 1500);
        assert!(t.mac.is_some());
        assert_eq!(r.link("svn_t").unwrap().as_ref(), Some(t));
        assert_eq!(r.link("nope").unwrap(), None);

        // lo is up, so it carries 127.0.0.1/8.
        let lo = find(&links, "lo").index;
        let addrs = r.addrs().unwrap();
        assert!(
            addrs
                .iter()
                .any(|a| a.index == lo && a.addr == Ipv4Addr::LOCALHOST && a.prefix == 8),
            "{addrs:?}"
        );

        // A persistent tap survives our descriptor; deleting it, the
        // bridge and one end of the veth pair removes everything.
        for n in ["svn_t", "sve_b", "sbr_t"] {
            r.apply(&LinkOp::Delete { name: n.into() }).unwrap();
        }
        assert_eq!(names(&mut r), ["lo"]);
    });
}

#[test]
fn a_macvtap_is_made_on_a_parent_with_its_own_mac() {
    in_private_netns("a_macvtap_is_made_on_a_parent_with_its_own_mac", || {
        let mut r = Rtnl::open().unwrap();
        // The fake physical interface: a bridge (as in docs/networking.md).
        r.apply(&create("sbr_phys", NewLink::Bridge)).unwrap();
        let mac = [0x02, 0, 0, 0, 0x33, 0x44];
        let plan = [
            create(
                "svc_t",
                NewLink::Macvtap {
                    parent: "sbr_phys".into(),
                    txqlen: 500,
                },
            ),
            LinkOp::SetAlias {
                name: "svc_t".into(),
                alias: "cncivnic_x".into(),
            },
            LinkOp::SetMac {
                name: "svc_t".into(),
                mac,
            },
            LinkOp::Up {
                name: "svc_t".into(),
            },
        ];
        match r.run(&plan) {
            Ok(()) => {
                let links = r.links().unwrap();
                let p = find(&links, "sbr_phys");
                let m = find(&links, "svc_t");
                assert_eq!(m.kind.as_deref(), Some("macvtap"));
                assert_eq!(m.parent, Some(p.index));
                assert_eq!(m.mac, Some(mac));
                assert_eq!(m.alias.as_deref(), Some("cncivnic_x"));
                assert_ne!(m.flags & IFF_UP, 0);
            }
            // A kernel without macvtap: a clear error, nothing left behind.
            Err(e) => {
                assert!(e.to_string().starts_with("create macvtap svc_t: "), "{e}");
                assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP), "{e}");
                eprintln!("note: no macvtap in this kernel: {e}");
            }
        }
        r.apply(&LinkOp::Delete {
            name: "sbr_phys".into(),
        })
        .unwrap();
        // Deleting the parent deletes the macvtap on it.
        assert_eq!(names(&mut r), ["lo"]);
    });
}

#[test]
fn a_failed_plan_leaves_no_link_behind() {
    in_private_netns("a_failed_plan_leaves_no_link_behind", || {
        let mut r = Rtnl::open().unwrap();
        // A link that is not the plan's: never touched by the roll-back.
        r.apply(&create("foreign0", NewLink::Bridge)).unwrap();
        let plan = [
            create("sbr_r", NewLink::Bridge),
            create("svn_r", NewLink::Tap),
            LinkOp::SetMaster {
                name: "svn_r".into(),
                master: "sbr_r".into(),
            },
            // Fails on every kernel: the name exists.
            create("sbr_r", NewLink::Bridge),
        ];
        let e = r.run(&plan).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "create bridge sbr_r: {}",
                io::Error::from_raw_os_error(libc::EEXIST)
            )
        );
        assert_eq!(e.op(), "create bridge sbr_r");
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        assert_eq!(names(&mut r), ["foreign0", "lo"]);
    });
}

#[test]
fn gretap_is_made_or_refused_clearly_and_rolled_back() {
    in_private_netns("gretap_is_made_or_refused_clearly_and_rolled_back", || {
        let mut r = Rtnl::open().unwrap();
        let plan = [
            create("sbr_g", NewLink::Bridge),
            create(
                "sgt_g",
                NewLink::Gretap {
                    local: Ipv4Addr::new(198, 51, 100, 2),
                    remote: Ipv4Addr::new(198, 51, 100, 9),
                    key: 0x1f,
                },
            ),
            LinkOp::SetMaster {
                name: "sgt_g".into(),
                master: "sbr_g".into(),
            },
        ];
        match r.run(&plan) {
            Ok(()) => {
                let links = r.links().unwrap();
                let g = find(&links, "sgt_g");
                assert_eq!(g.kind.as_deref(), Some("gretap"));
                assert_eq!(g.master, Some(find(&links, "sbr_g").index));
                for n in ["sgt_g", "sbr_g"] {
                    r.apply(&LinkOp::Delete { name: n.into() }).unwrap();
                }
            }
            Err(e) => {
                // This machine's kernel has no ip_gre: EOPNOTSUPP with the
                // kernel's "Unknown device type".
                let RtnlError::Kernel { op, err, reason } = &e else {
                    panic!("not a kernel error: {e:?}")
                };
                assert_eq!(op, "create gretap sgt_g");
                assert_eq!(err.raw_os_error(), Some(libc::EOPNOTSUPP), "{e}");
                assert!(
                    reason
                        .as_deref()
                        .unwrap_or("")
                        .contains("Unknown device type"),
                    "{e}"
                );
                eprintln!("note: no gretap in this kernel: {e}");
            }
        }
        assert_eq!(names(&mut r), ["lo"]);
    });
}

#[test]
fn kernel_errors_name_the_operation_and_carry_the_errno() {
    in_private_netns(
        "kernel_errors_name_the_operation_and_carry_the_errno",
        || {
            let mut r = Rtnl::open().unwrap();
            let e = r
                .apply(&LinkOp::Delete {
                    name: "nope".into(),
                })
                .unwrap_err();
            assert_eq!(e.op(), "delete nope");
            assert_eq!(e.raw_os_error(), Some(libc::ENODEV), "{e}");
            assert!(e.to_string().contains("no link named nope"), "{e}");

            // A tap is made exclusively: an existing name is EBUSY.
            r.apply(&create("svn_e", NewLink::Tap)).unwrap();
            let e = r.apply(&create("svn_e", NewLink::Tap)).unwrap_err();
            assert_eq!(e.op(), "create tap svn_e");
            assert_eq!(e.raw_os_error(), Some(libc::EBUSY), "{e}");

            // Refused before anything is sent.
            let e = r
                .apply(&create("name_far_too_long", NewLink::Bridge))
                .unwrap_err();
            assert!(matches!(e, RtnlError::Encode { .. }), "{e:?}");

            // An MTU the kernel refuses (below the minimum of a tap).
            let e = r
                .apply(&LinkOp::SetMtu {
                    name: "svn_e".into(),
                    mtu: 10,
                })
                .unwrap_err();
            assert_eq!(e.op(), "set MTU of svn_e to 10");
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
            r.apply(&LinkOp::Delete {
                name: "svn_e".into(),
            })
            .unwrap();
            assert_eq!(names(&mut r), ["lo"]);
        },
    );
}
