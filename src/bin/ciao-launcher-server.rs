//! `ciao-launcher-server`: an SSNTP server with a REST API, to drive
//! launchers without the rest of ciao. See ciao-launcher-server(8).

fn main() {
    let args = std::env::args().skip(1).collect();
    std::process::exit(ciao::testserver::shell::main(args));
}
