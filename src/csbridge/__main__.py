from csbridge.cli import main

main()
