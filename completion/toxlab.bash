# bash completion for toxlab, the client of toxlabd.

_toxlab()
{
    local cur prev words cword
    _init_completion || return

    local commands="subject specimen result test stop instruments id status licence decision thresholds import audit backup decode help"
    local command="" sub="" i
    for ((i = 1; i < cword; i++)); do
        case "${words[i]}" in
        -s | --socket) ((i++)) ;;
        -*) ;;
        *)
            if [[ -z $command ]]; then
                command=${words[i]}
            elif [[ -z $sub ]]; then
                sub=${words[i]}
            fi
            ;;
        esac
    done

    case "$prev" in
    -s | --socket)
        _filedir
        return
        ;;
    --matrix)
        COMPREPLY=($(compgen -W "oral-fluid hair blood urine breath" -- "$cur"))
        return
        ;;
    --for)
        COMPREPLY=($(compgen -W "application holder" -- "$cur"))
        return
        ;;
    --kind)
        COMPREPLY=($(compgen -W "community-detox compulsory-isolation community-rehabilitation
            psychotropic-dependence revoked-drunk-driving revoked-commercial-drink-driving
            revoked-commercial-drunk-driving revoked-serious-crash" -- "$cur"))
        return
        ;;
    --evidence | --rules | --database)
        _filedir
        return
        ;;
    esac

    if [[ -z $command ]]; then
        COMPREPLY=($(compgen -W "$commands --socket --json --help --version" -- "$cur"))
        return
    fi
    case "$command" in
    subject) [[ -z $sub ]] && COMPREPLY=($(compgen -W "add show" -- "$cur")) ;;
    specimen)
        if [[ -z $sub ]]; then
            COMPREPLY=($(compgen -W "add show" -- "$cur"))
        elif [[ $sub == add ]]; then
            COMPREPLY=($(compgen -W "--subject --barcode --matrix --stop --collected
                --segment-length --segment-position" -- "$cur"))
        fi
        ;;
    result)
        if [[ -z $sub ]]; then
            COMPREPLY=($(compgen -W "unlinked link release" -- "$cur"))
        elif [[ $sub == link ]]; then
            COMPREPLY=($(compgen -W "--barcode --reason" -- "$cur"))
        fi
        ;;
    test)
        if [[ -z $sub ]]; then
            COMPREPLY=($(compgen -W "start watch abort refuse show" -- "$cur"))
        elif [[ $sub == start ]]; then
            COMPREPLY=($(compgen -W "--subject --instrument --specimen --driving --no-wait" -- "$cur"))
        fi
        ;;
    stop)
        if [[ -z $sub ]]; then
            COMPREPLY=($(compgen -W "show note" -- "$cur"))
        elif [[ $sub == note ]]; then
            COMPREPLY=($(compgen -W "--dispute --crash" -- "$cur"))
        fi
        ;;
    id) [[ -z $sub ]] && COMPREPLY=($(compgen -W "check" -- "$cur")) ;;
    status)
        if [[ -z $sub ]]; then
            COMPREPLY=($(compgen -W "add" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "--subject --kind --start --end --reference --supersedes
                --reason" -- "$cur"))
        fi
        ;;
    licence)
        case "$sub" in
        "") COMPREPLY=($(compgen -W "add check evaluate" -- "$cur")) ;;
        add) COMPREPLY=($(compgen -W "--subject --number --class --commercial --handed-back
                --supersedes --reason" -- "$cur")) ;;
        check) COMPREPLY=($(compgen -W "--for --as-of" -- "$cur")) ;;
        evaluate) COMPREPLY=($(compgen -W "--evidence --for --as-of --rules" -- "$cur")) ;;
        esac
        ;;
    decision)
        if [[ -z $sub ]]; then
            COMPREPLY=($(compgen -W "confirm override show" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "--reason" -- "$cur"))
        fi
        ;;
    thresholds) [[ -z $sub ]] && COMPREPLY=($(compgen -W "reload" -- "$cur")) ;;
    audit)
        if [[ -z $sub ]]; then
            COMPREPLY=($(compgen -W "verify head" -- "$cur"))
        elif [[ $sub == verify ]]; then
            COMPREPLY=($(compgen -W "--database" -- "$cur"))
        fi
        ;;
    import | decode) _filedir ;;
    esac
}
complete -F _toxlab toxlab
