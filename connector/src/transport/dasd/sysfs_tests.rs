use super::*;
use crate::transport::dasd::test_support::*;

fn id(s: &str) -> CcwBusId {
    s.parse().unwrap()
}

#[test]
fn cio_ignore_ranges_as_the_kernel_prints_them() {
    let text = "0.0.0000-0.0.014f\n0.0.0151-0.0.b0ff\n0.0.b101\n0.1.0000-0.1.ffff\n";
    let r = parse_cio_ignore(text).unwrap();
    assert_eq!(r.len(), 4);
    assert_eq!(
        r[2],
        IgnoredRange {
            css: 0,
            ssid: 0,
            from: 0xb101,
            to: 0xb101
        }
    );
    assert_eq!(render_cio_ignore(&r), text);
    assert!(parse_cio_ignore("").unwrap().is_empty());
    for bad in [
        "0.0.b100-0.1.b1ff",
        "0.0.b1ff-0.0.b100",
        "0.0.b10",
        "all",
        "0.0.b100-",
        "0.0.b100.1",
    ] {
        assert!(parse_cio_ignore(bad).is_err(), "{bad}");
    }
}

#[test]
fn ignored_devices_are_found_on_the_list() {
    let env = setup();
    let p = env.t.paths();
    assert_eq!(cio_ignored(&p, id("0.0.b100")).unwrap(), Some(false));
    assert_eq!(cio_ignored(&p, id("0.0.b101")).unwrap(), Some(true));
    assert_eq!(cio_ignored(&p, id("0.0.0150")).unwrap(), Some(false));
    assert_eq!(cio_ignored(&p, id("0.2.b100")).unwrap(), Some(true));
    set_ignored(&env.t, &[(0, 0xb100, 0xb100)]);
    assert_eq!(cio_ignored(&p, id("0.0.b100")).unwrap(), Some(true));
    unignore(&env.t, "0.0.b100");
    assert_eq!(cio_ignored(&p, id("0.0.b100")).unwrap(), Some(false));
    env.t.remove("proc/cio_ignore");
    assert_eq!(cio_ignored(&p, id("0.0.b100")).unwrap(), None);
    crate::host::fixture::write(&env.t.path("proc/cio_ignore"), "garbage\n");
    let e = cio_ignored(&p, id("0.0.b100")).unwrap_err();
    assert!(e.to_string().contains("proc/cio_ignore"), "{e}");
}

#[test]
fn a_dasd_offline_then_online() {
    let env = setup();
    let p = env.t.paths();
    assert_eq!(ccw_device(&p, id(BUSID)).unwrap(), None);
    let v = volume();
    add_dasd(&env.t, &v);
    let d = ccw_device(&p, id(BUSID)).unwrap().unwrap();
    assert!(!d.online && !d.settled() && !d.alias);
    assert_eq!(d.driver.as_deref(), Some(ECKD_DRIVER));
    assert_eq!(
        (d.cutype.as_deref(), d.devtype.as_deref()),
        (Some("3990/e9"), Some("3390/0c"))
    );
    assert_eq!(d.availability.as_deref(), Some("good"));
    assert_eq!(d.status.as_deref(), Some("unknown"));
    // The uid is empty while offline.
    assert_eq!((d.uid, d.disk), (None, None));
    kernel_online(&env.t, &v);
    udev_online(&env.t, &v);
    let d = ccw_device(&p, id(BUSID)).unwrap().unwrap();
    assert!(d.online && d.settled() && !d.unformatted());
    assert_eq!(d.uid.as_deref(), Some(UID));
    assert_eq!(d.disk.as_deref(), Some("dasdb"));
    assert_eq!(partitions(&p, "dasdb").unwrap(), ["dasdb1"]);
    assert_eq!(
        block_size_bytes_of(&p, "dasdb"),
        MOD9_SECTORS * 512,
        "7.4 GB, a 3390-9"
    );
    assert_eq!(
        link_target(&p, &by_path(id(BUSID))).unwrap().as_deref(),
        Some("dasdb")
    );
    assert_eq!(
        link_target(&p, &by_path_part(id(BUSID), 1))
            .unwrap()
            .as_deref(),
        Some("dasdb1")
    );
    assert!(env.t.exists(&format!("dev/disk/by-id/ccw-{UID}")));
    assert!(env.t.exists("dev/disk/by-id/ccw-0X0B100-part1"));
    assert!(d.describe().contains("status=online"), "{}", d.describe());
    kernel_offline(&env.t, &v);
    udev_offline(&env.t, &v);
    let d = ccw_device(&p, id(BUSID)).unwrap().unwrap();
    assert!(!d.online && d.disk.is_none() && d.uid.is_none());
    assert!(
        crate::host::udev::removal_leftovers(&p, "dasdb")
            .unwrap()
            .is_empty()
    );
    // The root disk and the network device are untouched.
    assert_eq!(
        ccw_device(&p, id("0.0.0150"))
            .unwrap()
            .unwrap()
            .disk
            .as_deref(),
        Some("dasda")
    );
    let qeth = ccw_device(&p, id("0.0.f500")).unwrap().unwrap();
    assert_eq!(
        (qeth.driver.as_deref(), qeth.status, qeth.online),
        (Some("qeth"), None, true)
    );
}

fn block_size_bytes_of(p: &HostPaths, disk: &str) -> u64 {
    crate::host::scsi::block_size_bytes(p, disk)
        .unwrap()
        .unwrap()
}

#[test]
fn unformatted_and_alias_devices() {
    let env = setup();
    let p = env.t.paths();
    let u = unformatted();
    add_dasd(&env.t, &u);
    kernel_online(&env.t, &u);
    udev_online(&env.t, &u);
    let d = ccw_device(&p, id(BUSID)).unwrap().unwrap();
    assert!(d.settled() && d.unformatted());
    assert!(partitions(&p, "dasdb").unwrap().is_empty());
    assert_eq!(block_size_bytes_of(&p, "dasdb"), 0);
    // 59-dasd.rules makes by-id links only for a formatted (online) DASD.
    assert!(
        env.t
            .links_to("dasdb")
            .iter()
            .all(|l| { l.to_string_lossy().ends_with("by-path/ccw-0.0.b100") })
    );
    let a = alias();
    add_dasd(&env.t, &a);
    kernel_online(&env.t, &a);
    let d = ccw_device(&p, id("0.0.b1fe")).unwrap().unwrap();
    assert!(d.alias && d.online && d.disk.is_none());
    assert_eq!(d.uid.as_deref(), Some("IBM.750000000DXP71.2300.xx"));
    // An unknown online value is an error naming the attribute.
    crate::host::fixture::write(
        &env.t.path("sys/devices/css0/0.0.0023/0.0.b100/online"),
        "yes\n",
    );
    let e = ccw_device(&p, id(BUSID)).unwrap_err();
    assert!(e.to_string().contains("0.0.b100/online"), "{e}");
}
