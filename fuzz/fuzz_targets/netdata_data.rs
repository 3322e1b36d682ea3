//! A Netdata `/api/v1/data` answer, as an agent (or anything answering in its place) may send it:
//! parsing, the four metric formulas and the staleness check must return errors, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let Ok(table) = dsmon_netdata::parse_data("system.cpu", body) else {
        return;
    };
    let _ = dsmon_netdata::cpu_pct(&table);
    let _ = dsmon_netdata::mem_pct(&table);
    let _ = dsmon_netdata::disk_pct(&table);
    let _ = dsmon_netdata::net_kbps(&table);
    // The reference clock comes from the agent's Date header: any value.
    for reference in [table.time, 0, i64::MIN, i64::MAX] {
        let _ = table.check_fresh("system.cpu", reference);
    }
});
