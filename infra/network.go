package main

import (
	"fmt"
	"net/netip"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Network is where Nimbus runs: public subnets in two availability zones
// (instances reach SQS, S3 and SSM through the internet gateway, S3 through
// a gateway endpoint), and the two security groups.
type Network struct {
	pulumi.ResourceState

	VpcID                 pulumi.StringOutput      `pulumi:"vpcId"`
	SubnetIDs             pulumi.StringArrayOutput `pulumi:"subnetIds"`
	WebSecurityGroupID    pulumi.StringOutput      `pulumi:"webSecurityGroupId"`
	WorkerSecurityGroupID pulumi.StringOutput      `pulumi:"workerSecurityGroupId"`
}

// NetworkArgs configures a Network.
type NetworkArgs struct {
	// UseDefaultVpc uses the account's default VPC and its default subnets
	// instead of creating a VPC.
	UseDefaultVpc bool
	// VpcCidr is the new VPC's range; each subnet gets a sixteenth of it.
	VpcCidr string
	// Region names the S3 gateway endpoint's service.
	Region string
	// HTTPPort and AllowedCidrs make up the web tier's only ingress rule.
	HTTPPort     int
	AllowedCidrs []string
	Tags         map[string]string
}

// subnetCount is how many availability zones Nimbus spreads over.
const subnetCount = 2

// NewNetwork declares the network.
func NewNetwork(ctx *pulumi.Context, name string, args *NetworkArgs, opts ...pulumi.ResourceOption) (*Network, error) {
	n := &Network{}
	if err := ctx.RegisterComponentResource("nimbus:infra:Network", name, n, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(n)

	var vpcID pulumi.StringInput
	var subnetIDs pulumi.StringArray
	if args.UseDefaultVpc {
		vpc, err := ec2.LookupVpc(ctx, &ec2.LookupVpcArgs{Default: pulumi.BoolRef(true)}, pulumi.Parent(n))
		if err != nil {
			return nil, fmt.Errorf("looking up the default VPC: %w", err)
		}
		subnets, err := ec2.GetSubnets(ctx, &ec2.GetSubnetsArgs{Filters: []ec2.GetSubnetsFilter{
			{Name: "vpc-id", Values: []string{vpc.Id}},
			{Name: "default-for-az", Values: []string{"true"}},
		}}, pulumi.Parent(n))
		if err != nil {
			return nil, fmt.Errorf("listing the default VPC's subnets: %w", err)
		}
		if len(subnets.Ids) < subnetCount {
			return nil, fmt.Errorf("the default VPC %s has %d default subnets; need %d", vpc.Id, len(subnets.Ids), subnetCount)
		}
		vpcID = pulumi.String(vpc.Id)
		for _, id := range subnets.Ids[:subnetCount] {
			subnetIDs = append(subnetIDs, pulumi.String(id))
		}
	} else {
		id, ids, err := n.newVpc(ctx, name, args, parent)
		if err != nil {
			return nil, err
		}
		vpcID, subnetIDs = id, ids
	}

	web, err := ec2.NewSecurityGroup(ctx, name+"-web", &ec2.SecurityGroupArgs{
		Description: pulumi.String("Nimbus web tier: HTTP from the allowed client networks only"),
		VpcId:       vpcID,
		Ingress: ec2.SecurityGroupIngressArray{ec2.SecurityGroupIngressArgs{
			Description: pulumi.String("Nimbus HTTP API"),
			Protocol:    pulumi.String("tcp"),
			FromPort:    pulumi.Int(args.HTTPPort),
			ToPort:      pulumi.Int(args.HTTPPort),
			CidrBlocks:  pulumi.ToStringArray(args.AllowedCidrs),
		}},
		Egress: egressAll(),
		Tags:   tagged(args.Tags, name+"-web"),
	}, parent)
	if err != nil {
		return nil, err
	}
	worker, err := ec2.NewSecurityGroup(ctx, name+"-worker", &ec2.SecurityGroupArgs{
		Description: pulumi.String("Nimbus workers: nothing inbound"),
		VpcId:       vpcID,
		Ingress:     ec2.SecurityGroupIngressArray{},
		Egress:      egressAll(),
		Tags:        tagged(args.Tags, name+"-worker"),
	}, parent)
	if err != nil {
		return nil, err
	}

	n.VpcID = vpcID.ToStringOutput()
	n.SubnetIDs = subnetIDs.ToStringArrayOutput()
	n.WebSecurityGroupID = web.ID().ToStringOutput()
	n.WorkerSecurityGroupID = worker.ID().ToStringOutput()
	return n, ctx.RegisterResourceOutputs(n, pulumi.Map{
		"vpcId":                 n.VpcID,
		"subnetIds":             n.SubnetIDs,
		"webSecurityGroupId":    n.WebSecurityGroupID,
		"workerSecurityGroupId": n.WorkerSecurityGroupID,
	})
}

// newVpc declares a VPC with public subnets, an internet gateway and an S3
// gateway endpoint, and returns the VPC and subnet ids.
func (n *Network) newVpc(ctx *pulumi.Context, name string, args *NetworkArgs, parent pulumi.ResourceOption) (pulumi.StringInput, pulumi.StringArray, error) {
	zones, err := aws.GetAvailabilityZones(ctx, &aws.GetAvailabilityZonesArgs{
		State: pulumi.StringRef("available"),
		// Regular zones only: no Local Zones or Wavelength Zones.
		Filters: []aws.GetAvailabilityZonesFilter{{Name: "opt-in-status", Values: []string{"opt-in-not-required"}}},
	}, pulumi.Parent(n))
	if err != nil {
		return nil, nil, fmt.Errorf("listing availability zones: %w", err)
	}
	if len(zones.Names) < subnetCount {
		return nil, nil, fmt.Errorf("region %s has %d availability zones; need %d", args.Region, len(zones.Names), subnetCount)
	}

	vpc, err := ec2.NewVpc(ctx, name+"-vpc", &ec2.VpcArgs{
		CidrBlock:          pulumi.String(args.VpcCidr),
		EnableDnsSupport:   pulumi.Bool(true),
		EnableDnsHostnames: pulumi.Bool(true),
		Tags:               tagged(args.Tags, name),
	}, parent)
	if err != nil {
		return nil, nil, err
	}
	igw, err := ec2.NewInternetGateway(ctx, name+"-igw", &ec2.InternetGatewayArgs{
		VpcId: vpc.ID(),
		Tags:  tagged(args.Tags, name),
	}, parent)
	if err != nil {
		return nil, nil, err
	}
	routes, err := ec2.NewRouteTable(ctx, name+"-public", &ec2.RouteTableArgs{
		VpcId: vpc.ID(),
		Routes: ec2.RouteTableRouteArray{ec2.RouteTableRouteArgs{
			CidrBlock: pulumi.String("0.0.0.0/0"),
			GatewayId: igw.ID(),
		}},
		Tags: tagged(args.Tags, name+"-public"),
	}, parent)
	if err != nil {
		return nil, nil, err
	}
	var subnetIDs pulumi.StringArray
	for i, zone := range zones.Names[:subnetCount] {
		cidr, err := subnetCIDR(args.VpcCidr, 4, i)
		if err != nil {
			return nil, nil, err
		}
		subnet, err := ec2.NewSubnet(ctx, fmt.Sprintf("%s-public-%d", name, i), &ec2.SubnetArgs{
			VpcId:            vpc.ID(),
			CidrBlock:        pulumi.String(cidr),
			AvailabilityZone: pulumi.String(zone),
			// Instances reach SQS and SSM over the internet gateway; without
			// a NAT gateway they need public addresses (no inbound rules).
			MapPublicIpOnLaunch: pulumi.Bool(true),
			Tags:                tagged(args.Tags, fmt.Sprintf("%s-public-%s", name, zone)),
		}, parent)
		if err != nil {
			return nil, nil, err
		}
		if _, err := ec2.NewRouteTableAssociation(ctx, fmt.Sprintf("%s-public-%d", name, i), &ec2.RouteTableAssociationArgs{
			SubnetId:     subnet.ID(),
			RouteTableId: routes.ID(),
		}, parent); err != nil {
			return nil, nil, err
		}
		subnetIDs = append(subnetIDs, subnet.ID())
	}
	// S3 traffic (images and results) stays on the AWS network, free of
	// data-processing charges.
	if _, err := ec2.NewVpcEndpoint(ctx, name+"-s3", &ec2.VpcEndpointArgs{
		VpcId:           vpc.ID(),
		ServiceName:     pulumi.String(fmt.Sprintf("com.amazonaws.%s.s3", args.Region)),
		VpcEndpointType: pulumi.String("Gateway"),
		RouteTableIds:   pulumi.StringArray{routes.ID()},
		Tags:            tagged(args.Tags, name+"-s3"),
	}, parent); err != nil {
		return nil, nil, err
	}
	return vpc.ID(), subnetIDs, nil
}

// egressAll lets instances reach SQS, S3, SSM and the OS package mirrors.
func egressAll() ec2.SecurityGroupEgressArray {
	return ec2.SecurityGroupEgressArray{ec2.SecurityGroupEgressArgs{
		Description: pulumi.String("AWS APIs (SQS, S3, SSM, Auto Scaling) and OS updates"),
		Protocol:    pulumi.String("-1"),
		FromPort:    pulumi.Int(0),
		ToPort:      pulumi.Int(0),
		CidrBlocks:  pulumi.StringArray{pulumi.String("0.0.0.0/0")},
	}}
}

// subnetCIDR returns the index-th subnet of vpc that is extraBits longer.
func subnetCIDR(vpc string, extraBits, index int) (string, error) {
	p, err := netip.ParsePrefix(vpc)
	if err != nil || !p.Addr().Is4() {
		return "", fmt.Errorf("VPC range %q is not an IPv4 CIDR", vpc)
	}
	bits := p.Bits() + extraBits
	if bits > 28 || index < 0 || index >= 1<<extraBits {
		return "", fmt.Errorf("cannot carve subnet %d of /%d out of %s", index, bits, vpc)
	}
	base := p.Masked().Addr().As4()
	n := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	n += uint32(index) << (32 - bits)
	addr := netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	return netip.PrefixFrom(addr, bits).String(), nil
}
