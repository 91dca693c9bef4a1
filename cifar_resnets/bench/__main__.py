from cifar_resnets.bench.cli import main

main()
