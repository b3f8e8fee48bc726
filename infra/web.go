package main

import (
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Web is the single instance running the web front end and the scaler,
// behind an Elastic IP.
type Web struct {
	pulumi.ResourceState

	Instance *ec2.Instance
	IP       *ec2.Eip
	// Endpoint is the service's base URL, http://<elastic ip>:<port>.
	Endpoint pulumi.StringOutput `pulumi:"endpoint"`
}

// WebArgs configures Web.
type WebArgs struct {
	AmiID           pulumi.StringInput
	InstanceType    string
	InstanceProfile pulumi.StringInput
	SecurityGroupID pulumi.StringInput
	SubnetID        pulumi.StringInput
	// UserData is the plain first-boot script.
	UserData      pulumi.StringInput
	RootVolumeGiB int
	HTTPPort      int
	// After lists resources (the role's grants) that must exist before the
	// instance boots.
	After []pulumi.Resource
	Tags  map[string]string
}

// NewWeb declares the web instance and its Elastic IP.
func NewWeb(ctx *pulumi.Context, name string, args *WebArgs, opts ...pulumi.ResourceOption) (*Web, error) {
	w := &Web{}
	if err := ctx.RegisterComponentResource("nimbus:infra:Web", name, w, opts...); err != nil {
		return nil, err
	}
	instance, err := ec2.NewInstance(ctx, name, &ec2.InstanceArgs{
		Ami:                 args.AmiID,
		InstanceType:        pulumi.String(args.InstanceType),
		SubnetId:            args.SubnetID,
		VpcSecurityGroupIds: pulumi.StringArray{args.SecurityGroupID},
		IamInstanceProfile:  args.InstanceProfile,
		MetadataOptions: ec2.InstanceMetadataOptionsArgs{
			HttpEndpoint:            pulumi.String("enabled"),
			HttpTokens:              pulumi.String("required"),
			HttpPutResponseHopLimit: pulumi.Int(imdsHopLimit),
			InstanceMetadataTags:    pulumi.String("disabled"),
		},
		RootBlockDevice: ec2.InstanceRootBlockDeviceArgs{
			VolumeSize:          pulumi.Int(args.RootVolumeGiB),
			VolumeType:          pulumi.String("gp3"),
			Encrypted:           pulumi.Bool(true),
			DeleteOnTermination: pulumi.Bool(true),
		},
		UserData: args.UserData,
		// New queue URLs or bucket names mean a new instance: user data
		// only runs at first boot.
		UserDataReplaceOnChange: pulumi.Bool(true),
		Tags:                    tagged(args.Tags, name),
		VolumeTags:              tagged(args.Tags, name),
	}, pulumi.Parent(w), pulumi.DependsOn(args.After))
	if err != nil {
		return nil, err
	}
	ip, err := ec2.NewEip(ctx, name, &ec2.EipArgs{
		Domain:   pulumi.String("vpc"),
		Instance: instance.ID(),
		Tags:     tagged(args.Tags, name),
	}, pulumi.Parent(w))
	if err != nil {
		return nil, err
	}
	w.Instance, w.IP = instance, ip
	w.Endpoint = pulumi.Sprintf("http://%s:%d", ip.PublicIp, args.HTTPPort)
	return w, ctx.RegisterResourceOutputs(w, pulumi.Map{
		"endpoint":   w.Endpoint,
		"instanceId": instance.ID(),
	})
}
