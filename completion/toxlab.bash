# bash completion for toxlab, the client of toxlabd.

_toxlab()
{
    local cur prev words cword
    _init_completion || return

    local commands="subject specimen test stop instruments decode help"
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
    esac

    if [[ -z $command ]]; then
        COMPREPLY=($(compgen -W "$commands --socket --json --help --version" -- "$cur"))
        return
    fi
    case "$command" in
    subject) [[ -z $sub ]] && COMPREPLY=($(compgen -W "add show" -- "$cur")) ;;
    specimen)
        if [[ -z $sub ]]; then
            COMPREPLY=($(compgen -W "add" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "--subject --barcode --matrix --stop --collected" -- "$cur"))
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
    decode) _filedir ;;
    esac
}
complete -F _toxlab toxlab
