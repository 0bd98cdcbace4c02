complete -c runlog -l tail -d 'Print only the last N lines (then follow if the job runs)' -r
complete -c runlog -s f -l follow -d 'Follow while the job runs (the default; for several jobs too)'
complete -c runlog -l running -d 'Follow every running job'
complete -c runlog -l no-follow -d 'Print and exit, even if the job is still running'
complete -c runlog -s h -l help -d 'Print help'
complete -c runlog -s V -l version -d 'Print version'
# Job ids and names (added by the assets test's generator).
complete -c runlog -n "not __fish_prev_arg_in --tail" -f -a "(runs --complete-ids=all 2>/dev/null)"
