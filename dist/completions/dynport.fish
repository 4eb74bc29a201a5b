# fish completion for dynport(1). Generated from dynport's tables of flags
# by `make dist-files`; do not edit: tests/tests/dist/ fails when they differ.

complete -c dynport -f
complete -c dynport -n __fish_use_subcommand -a serve -d 'run the server'
complete -c dynport -n __fish_use_subcommand -a help -d 'print this help'
complete -c dynport -n __fish_use_subcommand -a lease -d 'lease ports'
complete -c dynport -n __fish_use_subcommand -a release -d 'end a lease'
complete -c dynport -n __fish_use_subcommand -a renew -d 'give a lease a new life'
complete -c dynport -n __fish_use_subcommand -a leases -d 'list the live leases'
complete -c dynport -n __fish_use_subcommand -a status -d 'the server\'s overview'
complete -c dynport -n __fish_use_subcommand -a url -d 'the running server\'s base URL, or NAME\'s'
complete -c dynport -n __fish_use_subcommand -a run -d 'run CMD with a leased port in $PORT'
complete -c dynport -n __fish_use_subcommand -a who -d 'the sockets and processes holding PORT'
complete -c dynport -n __fish_use_subcommand -a names -d 'list the names and their URLs'
complete -c dynport -n __fish_use_subcommand -a port -d 'the port NAME names'
complete -c dynport -n __fish_use_subcommand -a alias -d 'name a port dynport did not lease'
complete -c dynport -n __fish_use_subcommand -a watch -d 'print the server\'s events as they come'

# dynport serve
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l host -x -d 'Address to listen on, IPv4 or IPv6'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l range -x -d 'The managed range, both ends included, ports 1 to 65535'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l state-dir -x -a '(__fish_complete_directories)' -d 'Holds dynamic_ports.json and the lock'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l refresh-secs -x -d 'Seconds between background rescans, 1 to 86400'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l workers -x -d 'HTTP worker threads, 1 to 256'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l fallback-port -x -d 'Tried only when no port of the range can be bound'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l token -x -d 'Bearer token that mutating endpoints require'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l token-file -r -F -d 'Read the token from a file, trailing newlines dropped'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l allow-host -x -d 'A name requests may give in their Host header besides IP addresses and localhost'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l log-level -x -a 'error warn info debug trace' -d 'error, warn, info, debug or trace'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l unix-socket -r -F -d 'The API on a Unix socket too, where the kernel tells who connects'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l max-ports-per-uid -x -d 'Live leased ports one user may hold, 1 to 65535, or none'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l max-connections-per-uid -x -d 'Open HTTP connections one user may hold, TCP and Unix socket together, 1 to 1024'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l reserve-kernel -d 'Keep every leased port, and the server\'s own, that lies in the kernel\'s ephemeral range in /proc/sys/net/ipv4/ip_local_reserved_ports, so no outgoing connection takes it'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l pool -x -d 'A named pool inside the range'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l exclude -x -d 'Ports never handed out nor chosen by the server'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l lease-ttl-secs -x -d 'A lease\'s life when the request names none, 1 to 604800'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l name-retention-days -x -d 'Days a name stays its owner\'s after its last lease ended, 0 to 3650'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l max-names-per-uid -x -d 'Names one user may hold, live, retained and aliases together, 1 to 65535'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l routes-domain -x -d 'Requests whose Host is NAME.D go to the live lease or alias named NAME'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l routes-port -x -d 'A listener that only routes names, outside the range and not the --fallback-port, so URLs do not move with the API\'s port'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l portserver-socket -x -d 'Speak portpicker\'s portserver protocol on this Unix socket'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -l portserver-pool -x -d 'The pool the portserver\'s ports come from'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -s h -l help -d 'print this help'
complete -c dynport -n 'not __fish_seen_subcommand_from help lease release renew leases status url run who names port alias watch' -s V -l version -d 'print the version'

# dynport help

# dynport lease
complete -c dynport -n '__fish_seen_subcommand_from lease' -l count -x -d 'how many ports'
complete -c dynport -n '__fish_seen_subcommand_from lease' -l port -x -d 'ask for this exact port'
complete -c dynport -n '__fish_seen_subcommand_from lease' -l pool -x -d 'take the ports from this pool'
complete -c dynport -n '__fish_seen_subcommand_from lease' -l ttl -x -d 'life of the lease, in seconds or like 10m'
complete -c dynport -n '__fish_seen_subcommand_from lease' -l owner -x -d 'who holds it, shown in `dynport leases`'
complete -c dynport -n '__fish_seen_subcommand_from lease' -l name -x -d 'name the first port'
complete -c dynport -n '__fish_seen_subcommand_from lease' -l protocol -x -a 'both tcp udp' -d 'both, tcp or udp'
complete -c dynport -n '__fish_seen_subcommand_from lease' -l pid -x -d 'end the lease when process PID exits'
complete -c dynport -n '__fish_seen_subcommand_from lease' -l json -d 'print the server\'s whole answer as JSON'
complete -c dynport -n '__fish_seen_subcommand_from lease' -l url -x -d 'its base URL'
complete -c dynport -n '__fish_seen_subcommand_from lease' -l state-dir -x -a '(__fish_complete_directories)' -d 'read the server\'s address from DIR/dynamic_ports.json'
complete -c dynport -n '__fish_seen_subcommand_from lease' -l server-uid -x -d 'trust a state directory and server of uid UID too'
complete -c dynport -n '__fish_seen_subcommand_from lease' -l token -x -d 'bearer token for changes'
complete -c dynport -n '__fish_seen_subcommand_from lease' -l token-file -r -F -d 'read the token from PATH, a regular file of yours that no one else may read'
complete -c dynport -n '__fish_seen_subcommand_from lease' -s h -l help -d 'print this help'

# dynport release
complete -c dynport -n '__fish_seen_subcommand_from release' -l json -d 'print the server\'s whole answer as JSON'
complete -c dynport -n '__fish_seen_subcommand_from release' -l url -x -d 'its base URL'
complete -c dynport -n '__fish_seen_subcommand_from release' -l state-dir -x -a '(__fish_complete_directories)' -d 'read the server\'s address from DIR/dynamic_ports.json'
complete -c dynport -n '__fish_seen_subcommand_from release' -l server-uid -x -d 'trust a state directory and server of uid UID too'
complete -c dynport -n '__fish_seen_subcommand_from release' -l token -x -d 'bearer token for changes'
complete -c dynport -n '__fish_seen_subcommand_from release' -l token-file -r -F -d 'read the token from PATH, a regular file of yours that no one else may read'
complete -c dynport -n '__fish_seen_subcommand_from release' -s h -l help -d 'print this help'

# dynport renew
complete -c dynport -n '__fish_seen_subcommand_from renew' -l ttl -x -d 'new life from now, in seconds or like 10m'
complete -c dynport -n '__fish_seen_subcommand_from renew' -l json -d 'print the server\'s whole answer as JSON'
complete -c dynport -n '__fish_seen_subcommand_from renew' -l url -x -d 'its base URL'
complete -c dynport -n '__fish_seen_subcommand_from renew' -l state-dir -x -a '(__fish_complete_directories)' -d 'read the server\'s address from DIR/dynamic_ports.json'
complete -c dynport -n '__fish_seen_subcommand_from renew' -l server-uid -x -d 'trust a state directory and server of uid UID too'
complete -c dynport -n '__fish_seen_subcommand_from renew' -l token -x -d 'bearer token for changes'
complete -c dynport -n '__fish_seen_subcommand_from renew' -l token-file -r -F -d 'read the token from PATH, a regular file of yours that no one else may read'
complete -c dynport -n '__fish_seen_subcommand_from renew' -s h -l help -d 'print this help'

# dynport leases
complete -c dynport -n '__fish_seen_subcommand_from leases' -l json -d 'print the server\'s answer as JSON'
complete -c dynport -n '__fish_seen_subcommand_from leases' -l url -x -d 'its base URL'
complete -c dynport -n '__fish_seen_subcommand_from leases' -l state-dir -x -a '(__fish_complete_directories)' -d 'read the server\'s address from DIR/dynamic_ports.json'
complete -c dynport -n '__fish_seen_subcommand_from leases' -l server-uid -x -d 'trust a state directory and server of uid UID too'
complete -c dynport -n '__fish_seen_subcommand_from leases' -l token -x -d 'bearer token for changes'
complete -c dynport -n '__fish_seen_subcommand_from leases' -l token-file -r -F -d 'read the token from PATH, a regular file of yours that no one else may read'
complete -c dynport -n '__fish_seen_subcommand_from leases' -s h -l help -d 'print this help'

# dynport status
complete -c dynport -n '__fish_seen_subcommand_from status' -l json -d 'print the server\'s answer as JSON'
complete -c dynport -n '__fish_seen_subcommand_from status' -l url -x -d 'its base URL'
complete -c dynport -n '__fish_seen_subcommand_from status' -l state-dir -x -a '(__fish_complete_directories)' -d 'read the server\'s address from DIR/dynamic_ports.json'
complete -c dynport -n '__fish_seen_subcommand_from status' -l server-uid -x -d 'trust a state directory and server of uid UID too'
complete -c dynport -n '__fish_seen_subcommand_from status' -l token -x -d 'bearer token for changes'
complete -c dynport -n '__fish_seen_subcommand_from status' -l token-file -r -F -d 'read the token from PATH, a regular file of yours that no one else may read'
complete -c dynport -n '__fish_seen_subcommand_from status' -s h -l help -d 'print this help'

# dynport url
complete -c dynport -n '__fish_seen_subcommand_from url' -l url -x -d 'its base URL'
complete -c dynport -n '__fish_seen_subcommand_from url' -l state-dir -x -a '(__fish_complete_directories)' -d 'read the server\'s address from DIR/dynamic_ports.json'
complete -c dynport -n '__fish_seen_subcommand_from url' -l server-uid -x -d 'trust a state directory and server of uid UID too'
complete -c dynport -n '__fish_seen_subcommand_from url' -l token -x -d 'bearer token for changes'
complete -c dynport -n '__fish_seen_subcommand_from url' -l token-file -r -F -d 'read the token from PATH, a regular file of yours that no one else may read'
complete -c dynport -n '__fish_seen_subcommand_from url' -s h -l help -d 'print this help'

# dynport run
complete -c dynport -n '__fish_seen_subcommand_from run' -l count -x -d 'how many ports'
complete -c dynport -n '__fish_seen_subcommand_from run' -l port -x -d 'ask for this exact port'
complete -c dynport -n '__fish_seen_subcommand_from run' -l pool -x -d 'take the ports from this pool'
complete -c dynport -n '__fish_seen_subcommand_from run' -l ttl -x -d 'life of the lease, in seconds or like 10m'
complete -c dynport -n '__fish_seen_subcommand_from run' -l owner -x -d 'who holds it, shown in `dynport leases`'
complete -c dynport -n '__fish_seen_subcommand_from run' -l name -x -d 'name the first port'
complete -c dynport -n '__fish_seen_subcommand_from run' -l protocol -x -a 'both tcp udp' -d 'both, tcp or udp'
complete -c dynport -n '__fish_seen_subcommand_from run' -l socket -d 'bind the ports here and pass the listening sockets to CMD the systemd way'
complete -c dynport -n '__fish_seen_subcommand_from run' -l bind -x -d 'address to bind with --socket'
complete -c dynport -n '__fish_seen_subcommand_from run' -l url -x -d 'its base URL'
complete -c dynport -n '__fish_seen_subcommand_from run' -l state-dir -x -a '(__fish_complete_directories)' -d 'read the server\'s address from DIR/dynamic_ports.json'
complete -c dynport -n '__fish_seen_subcommand_from run' -l server-uid -x -d 'trust a state directory and server of uid UID too'
complete -c dynport -n '__fish_seen_subcommand_from run' -l token -x -d 'bearer token for changes'
complete -c dynport -n '__fish_seen_subcommand_from run' -l token-file -r -F -d 'read the token from PATH, a regular file of yours that no one else may read'
complete -c dynport -n '__fish_seen_subcommand_from run' -s h -l help -d 'print this help'
function __fish_dynport_run_command
    set -l tokens (commandline -opc) (commandline -ct)
    set -l dashes (contains -i -- -- $tokens)
    __fish_complete_subcommand --commandline $tokens[(math $dashes + 1)..-1]
end
complete -c dynport -n '__fish_seen_subcommand_from run; and contains -- -- (commandline -opc)' -x -a '(__fish_dynport_run_command)'

# dynport who
complete -c dynport -n '__fish_seen_subcommand_from who' -l json -d 'print the server\'s answer as JSON'
complete -c dynport -n '__fish_seen_subcommand_from who' -l url -x -d 'its base URL'
complete -c dynport -n '__fish_seen_subcommand_from who' -l state-dir -x -a '(__fish_complete_directories)' -d 'read the server\'s address from DIR/dynamic_ports.json'
complete -c dynport -n '__fish_seen_subcommand_from who' -l server-uid -x -d 'trust a state directory and server of uid UID too'
complete -c dynport -n '__fish_seen_subcommand_from who' -l token -x -d 'bearer token for changes'
complete -c dynport -n '__fish_seen_subcommand_from who' -l token-file -r -F -d 'read the token from PATH, a regular file of yours that no one else may read'
complete -c dynport -n '__fish_seen_subcommand_from who' -s h -l help -d 'print this help'

# dynport names
complete -c dynport -n '__fish_seen_subcommand_from names' -l json -d 'print the server\'s answer as JSON'
complete -c dynport -n '__fish_seen_subcommand_from names' -l url -x -d 'its base URL'
complete -c dynport -n '__fish_seen_subcommand_from names' -l state-dir -x -a '(__fish_complete_directories)' -d 'read the server\'s address from DIR/dynamic_ports.json'
complete -c dynport -n '__fish_seen_subcommand_from names' -l server-uid -x -d 'trust a state directory and server of uid UID too'
complete -c dynport -n '__fish_seen_subcommand_from names' -l token -x -d 'bearer token for changes'
complete -c dynport -n '__fish_seen_subcommand_from names' -l token-file -r -F -d 'read the token from PATH, a regular file of yours that no one else may read'
complete -c dynport -n '__fish_seen_subcommand_from names' -s h -l help -d 'print this help'

# dynport port
complete -c dynport -n '__fish_seen_subcommand_from port' -l url -x -d 'its base URL'
complete -c dynport -n '__fish_seen_subcommand_from port' -l state-dir -x -a '(__fish_complete_directories)' -d 'read the server\'s address from DIR/dynamic_ports.json'
complete -c dynport -n '__fish_seen_subcommand_from port' -l server-uid -x -d 'trust a state directory and server of uid UID too'
complete -c dynport -n '__fish_seen_subcommand_from port' -l token -x -d 'bearer token for changes'
complete -c dynport -n '__fish_seen_subcommand_from port' -l token-file -r -F -d 'read the token from PATH, a regular file of yours that no one else may read'
complete -c dynport -n '__fish_seen_subcommand_from port' -s h -l help -d 'print this help'

# dynport alias
complete -c dynport -n '__fish_seen_subcommand_from alias' -l remove -d 'remove the alias NAME'
complete -c dynport -n '__fish_seen_subcommand_from alias' -l json -d 'print the server\'s whole answer as JSON'
complete -c dynport -n '__fish_seen_subcommand_from alias' -l url -x -d 'its base URL'
complete -c dynport -n '__fish_seen_subcommand_from alias' -l state-dir -x -a '(__fish_complete_directories)' -d 'read the server\'s address from DIR/dynamic_ports.json'
complete -c dynport -n '__fish_seen_subcommand_from alias' -l server-uid -x -d 'trust a state directory and server of uid UID too'
complete -c dynport -n '__fish_seen_subcommand_from alias' -l token -x -d 'bearer token for changes'
complete -c dynport -n '__fish_seen_subcommand_from alias' -l token-file -r -F -d 'read the token from PATH, a regular file of yours that no one else may read'
complete -c dynport -n '__fish_seen_subcommand_from alias' -s h -l help -d 'print this help'

# dynport watch
complete -c dynport -n '__fish_seen_subcommand_from watch' -l count -x -d 'exit after N events'
complete -c dynport -n '__fish_seen_subcommand_from watch' -l json -d 'print each event as one line of JSON'
complete -c dynport -n '__fish_seen_subcommand_from watch' -l url -x -d 'its base URL'
complete -c dynport -n '__fish_seen_subcommand_from watch' -l state-dir -x -a '(__fish_complete_directories)' -d 'read the server\'s address from DIR/dynamic_ports.json'
complete -c dynport -n '__fish_seen_subcommand_from watch' -l server-uid -x -d 'trust a state directory and server of uid UID too'
complete -c dynport -n '__fish_seen_subcommand_from watch' -l token -x -d 'bearer token for changes'
complete -c dynport -n '__fish_seen_subcommand_from watch' -l token-file -r -F -d 'read the token from PATH, a regular file of yours that no one else may read'
complete -c dynport -n '__fish_seen_subcommand_from watch' -s h -l help -d 'print this help'
