complete -c runs -l json -d 'Print a JSON array, one object per job'
complete -c runs -l complete-ids -d 'For the shell completions: print every job id and job name, one a line'
complete -c runs -s h -l help -d 'Print help'
complete -c runs -s V -l version -d 'Print version'
