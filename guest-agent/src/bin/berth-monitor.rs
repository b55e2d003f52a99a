//! `berth-monitor DIR`: the small process that holds one running
//! container's stdio, logs and exit status (see
//! `berth_agent::runtime::monitor`). The agent starts it; it is its own
//! binary so that it carries none of the agent's weight.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir] = args.as_slice() else {
        eprintln!(
            "berth-monitor: usage: berth-monitor DIR (the agent starts it for each container)"
        );
        std::process::exit(2);
    };
    std::process::exit(berth_agent::runtime::monitor::main(std::path::Path::new(
        dir,
    )));
}
