//! `ciao-launcher`: the compute/network node agent. See ciao-launcher(8).

fn main() {
    let args = std::env::args_os().skip(1).collect();
    std::process::exit(ciao::node::main(args));
}
