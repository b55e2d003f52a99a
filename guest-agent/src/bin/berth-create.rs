//! `berth-create DIR`: the short-lived helper a container's monitor starts
//! to create the container with libcontainer (see
//! `berth_agent::runtime::monitor::helper`). Its own binary so that each
//! container start execs only the runtime, not the whole agent.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir] = args.as_slice() else {
        eprintln!("berth-create: usage: berth-create DIR (a container's monitor starts it)");
        std::process::exit(2);
    };
    std::process::exit(berth_agent::runtime::monitor::helper::main(
        std::path::Path::new(dir),
    ));
}
