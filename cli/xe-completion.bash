# Bash completion for xe: the commands (xe help --all), each command's parameters (its usage,
# xe help CMD), and uuids, names and field names fetched from the server with xe itself.
# Installed as share/bash-completion/completions/xe; or: source cli/xe-completion.bash

# The connection options of the line being completed, passed on to every xe run here.
_xe_connection=()

_xe_run() {
  xe "${_xe_connection[@]}" "$@" 2>/dev/null
}

# The values of `field` of every object of xe class `class`, one a line.
_xe_values() {
  _xe_run "$1-list" "params=$2" --minimal | sed 's/\([^\\]\),/\1\n/g; s/\\,/,/g'
}

# The field names of xe class `class` (of its first object's param-list).
_xe_fields() {
  _xe_run "$1-param-list" "uuid=$(_xe_values "$1" uuid | head -1)" | sed -n 's/^ *\([^ ]*\) (...).*/\1/p'
}

# COMPREPLY: the candidates (one a line) that start with `cur`. Bash replaces only the part of
# the word after its last break character (= and : by default), so that part is what is given.
_xe_reply() {
  local cur=$1 candidates=$2 strip="" breaks=${COMP_WORDBREAKS//[^=:]/}
  [[ -n $breaks && $cur == *[$breaks]* ]] && strip=${cur%"${cur##*[$breaks]}"}
  local IFS=$'\n'
  COMPREPLY=($(compgen -W "$candidates" -- "$cur"))
  COMPREPLY=("${COMPREPLY[@]#"$strip"}")
}

_xe() {
  local line=${COMP_LINE:0:COMP_POINT} command="" i
  local -a words
  read -ra words <<<"$line"
  [[ $line == *" " || ${#words[@]} -eq 0 ]] && words+=("")
  local cur=${words[-1]}
  _xe_connection=()
  for ((i = 1; i < ${#words[@]} - 1; i++)); do
    case ${words[i]} in
      -s|-p|-u|-pw|-pwf|--socket|--cert) _xe_connection+=("${words[i]}" "${words[i+1]}"); ((i++)) ;;
      --nossl) _xe_connection+=(--nossl) ;;
      -*|*=*) ;;
      *) [[ -z $command ]] && command=${words[i]} ;;
    esac
  done
  if [[ -z $command ]]; then
    _xe_reply "$cur" "$(_xe_run help --all | sed -n 's/^  //p')"
    return
  fi
  local class=${command%-*}
  class=${class%-param}
  if [[ $cur == *=* ]]; then
    local name=${cur%%=*} values=""
    case $name in
      uuid) values=$(_xe_values "$class" uuid) ;;
      param-name) values=$(_xe_fields "$class") ;;
      *-uuid) values=$(_xe_values "${name%-uuid}" uuid) ;;
      vm|host|sr|vdi|network|template|snapshot|pbd|vbd|vif|task|subject) values=$(_xe_values "$name" uuid; _xe_values "$name" name-label) ;;
      class) values=$(_xe_run help --all | sed -n 's/^  \(.*\)-param-list$/\1/p') ;;
    esac
    _xe_reply "$cur" "$(sed "s/^/$name=/" <<<"$values")"
    return
  fi
  local usage params
  usage=$(_xe_run help "$command" | grep '^usage:')
  params=$(grep -oE '[ [(][A-Za-z][A-Za-z0-9_-]*(:|=)' <<<"$usage" | cut -c2-)
  [[ $usage == *"| <"* ]] && params+=$'\n'"uuid="
  # Commands that select objects take any field of their class as a filter.
  local selected
  selected=$(sed -n 's/.*<\([a-z-]*\) field>=.*/\1/p' <<<"$usage")
  [[ -n $selected ]] && params+=$'\n'"$(_xe_fields "$selected" | sed 's/$/=/')"
  _xe_reply "$cur" "$params"$'\n'"--minimal"$'\n'"--force"$'\n'"--multiple"
  declare -F compopt >/dev/null && compopt -o nospace 2>/dev/null
  return 0
}

complete -F _xe xe
