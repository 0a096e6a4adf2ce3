from homenode.cli import main

main()
