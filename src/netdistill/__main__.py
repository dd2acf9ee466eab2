from netdistill.cli import main

main()
