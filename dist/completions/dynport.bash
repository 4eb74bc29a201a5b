# bash completion for dynport(1). Generated from dynport's tables of flags
# by `make dist-files`; do not edit: tests/tests/dist/ fails when they differ.

_dynport() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    # bash breaks --flag=value into three words at the '='.
    if [[ $cur == = ]]; then
        cur=
    elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then
        prev=${COMP_WORDS[COMP_CWORD-2]}
    fi
    local command=serve
    case ${COMP_WORDS[1]} in
        serve|help|lease|release|renew|leases|status|url|run|who|names|port|alias|watch) command=${COMP_WORDS[1]} ;;
    esac
    local i
    if [[ $command == run ]]; then
        for ((i = 2; i < COMP_CWORD; i++)); do
            [[ ${COMP_WORDS[i]} == -- ]] || continue
            if ((i == COMP_CWORD - 1)); then
                COMPREPLY=($(compgen -c -- "$cur"))
            else
                compopt -o default 2>/dev/null
                COMPREPLY=()
            fi
            return
        done
    fi
    case $prev in
        --state-dir) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur")); return ;;
        --token-file|--unix-socket) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --log-level) COMPREPLY=($(compgen -W 'error warn info debug trace' -- "$cur")); return ;;
        --protocol) COMPREPLY=($(compgen -W 'both tcp udp' -- "$cur")); return ;;
        --host|--range|--refresh-secs|--workers|--fallback-port|--token|--allow-host|--max-ports-per-uid|--max-connections-per-uid|--pool|--exclude|--lease-ttl-secs|--name-retention-days|--max-names-per-uid|--routes-domain|--routes-port|--portserver-socket|--portserver-pool|--count|--port|--ttl|--owner|--name|--pid|--url|--server-uid|--bind) COMPREPLY=(); return ;;
    esac
    local words=
    case $command in
        serve) words='--host --range --state-dir --refresh-secs --workers --fallback-port --token --token-file --allow-host --log-level --unix-socket --max-ports-per-uid --max-connections-per-uid --reserve-kernel --pool --exclude --lease-ttl-secs --name-retention-days --max-names-per-uid --routes-domain --routes-port --portserver-socket --portserver-pool --help -h --version -V' ;;
        lease) words='--count --port --pool --ttl --owner --name --protocol --pid --json --url --state-dir --server-uid --token --token-file --help -h' ;;
        release) words='--json --url --state-dir --server-uid --token --token-file --help -h' ;;
        renew) words='--ttl --json --url --state-dir --server-uid --token --token-file --help -h' ;;
        leases) words='--json --url --state-dir --server-uid --token --token-file --help -h' ;;
        status) words='--json --url --state-dir --server-uid --token --token-file --help -h' ;;
        url) words='--url --state-dir --server-uid --token --token-file --help -h' ;;
        run) words='--count --port --pool --ttl --owner --name --protocol --socket --bind --url --state-dir --server-uid --token --token-file --help -h' ;;
        who) words='--json --url --state-dir --server-uid --token --token-file --help -h' ;;
        names) words='--json --url --state-dir --server-uid --token --token-file --help -h' ;;
        port) words='--url --state-dir --server-uid --token --token-file --help -h' ;;
        alias) words='--remove --json --url --state-dir --server-uid --token --token-file --help -h' ;;
        watch) words='--count --json --url --state-dir --server-uid --token --token-file --help -h' ;;
    esac
    if ((COMP_CWORD == 1)) && [[ $cur != -* ]]; then
        words='serve help lease release renew leases status url run who names port alias watch'
    fi
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}

complete -F _dynport dynport
