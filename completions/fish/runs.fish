complete -c runs -l state -d 'Only jobs in this state (repeatable)' -r -f -a "running\t''
done\t''
failed\t''
killed\t''
stopped\t''
timeout\t''
lost\t''
elsewhere\t''"
complete -c runs -s n -l last -d 'Only the last N jobs (the newest)' -r
complete -c runs -l project -d 'Only the jobs of this directory\'s project (its git top level), as `job list` shows'
complete -c runs -l json -d 'Print a JSON array, one object per job'
complete -c runs -l complete-ids -d 'For the shell completions: print every job id and job name, one a line'
complete -c runs -s h -l help -d 'Print help'
complete -c runs -s V -l version -d 'Print version'
