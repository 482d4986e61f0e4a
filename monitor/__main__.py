from monitor.cli import main

if __name__ == "__main__":  # a process worker (spawned) imports this module again: no second run
    main()
